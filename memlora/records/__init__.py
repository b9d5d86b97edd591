"""Memory records: compact, normalized observations of an agent in the world, with semantic recall.

`schema` defines the record, `store` keeps records in SQLite with an FTS5 and a sqlite-vec
index, `manager.MemoryManager` is the one API an agent uses (write / recall), `backends` picks
local, openai or skip from MEMORY_BACKEND, `scenes` generates robot missions with gold records
and questions. Nothing outside this package imports it except the CLI and, behind a flag, the
MCP server.
"""
