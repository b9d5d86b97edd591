"""Knowledge-graph storage: the data model, the backend interface and its SQLite / JSONL backends."""
