"""Word pools the world generator draws from, and their split into disjoint train/validation/test parts.

Every pool is split by a stable hash of each item, so the test split meets names, places and
organisations the model never saw in training: it measures generalisation, not recall of the
training set.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")

# First names by culture, with the pronoun set the templates use for them ("f", "m", "n").
FIRST_NAMES: dict[str, list[tuple[str, str]]] = {
    "english": [(n, "f") for n in "Alice Emma Olivia Charlotte Grace Hannah Lucy Megan Sophie Chloe Abigail Harriet Eleanor Rosie Jessica Laura Rachel Natalie Victoria Bethany".split()]
    + [(n, "m") for n in "James Oliver Harry George Thomas William Jack Daniel Samuel Edward Henry Joseph Matthew Benjamin Oscar Alfie Callum Lewis Nathan Ryan".split()],
    "spanish": [(n, "f") for n in "Lucia Carmen Paula Elena Marta Alba Noelia Rocio Ines Pilar Valeria Ximena Lorena Camila Daniela Inés Sofía Begoña".split()]
    + [(n, "m") for n in "Alejandro Pablo Javier Diego Sergio Mateo Alvaro Hugo Rodrigo Manuel Ignacio Joaquin Esteban Gonzalo Raul Tomás Andrés Íñigo".split()],
    "portuguese": [(n, "f") for n in "Beatriz Mariana Leonor Joana Carolina Raquel Teresa Luana Thaissa Giovana Conceição Lígia".split()]
    + [(n, "m") for n in "Joao Tiago Duarte Rafael Goncalo Bruno Caio Thiago Vinicius Rui Gonçalo Simão".split()],
    "french": [(n, "f") for n in "Camille Manon Chloe Juliette Amelie Margaux Oceane Solene Elodie Agathe Clemence Lea Hélène Zoé Céline".split()]
    + [(n, "m") for n in "Louis Gabriel Arthur Mathis Theo Antoine Baptiste Quentin Maxime Julien Remi Bastien Jérôme Loïc".split()],
    "german": [(n, "f") for n in "Anna Lena Johanna Greta Frieda Katrin Ulrike Sabine Annika Wiebke Jördis Anneliese".split()]
    + [(n, "m") for n in "Lukas Jonas Felix Maximilian Tobias Florian Matthias Jannik Dirk Henning Jürgen Jörg".split()],
    "italian": [(n, "f") for n in "Giulia Chiara Francesca Alessia Martina Federica Ilaria Serena Valentina Beatrice".split()]
    + [(n, "m") for n in "Marco Luca Matteo Giovanni Lorenzo Andrea Davide Stefano Riccardo Emanuele".split()],
    "nordic": [(n, "f") for n in "Ingrid Astrid Sigrid Freja Maja Linnea Elin Saga Hanne Tuva Åsa Sølvi".split()]
    + [(n, "m") for n in "Erik Lars Anders Magnus Nils Oskar Henrik Soren Leif Bjorn Søren Björn".split()],
    "slavic": [(n, "f") for n in "Anastasia Katarzyna Zofia Olena Milena Irina Darya Jelena Agnieszka Vesna Małgorzata Dagmar".split()]
    + [(n, "m") for n in "Dmitri Mikhail Piotr Tomasz Andrzej Bogdan Nikola Milos Yaroslav Oleksandr Łukasz Zdeněk".split()],
    "greek_turkish": [(n, "f") for n in "Eleni Katerina Zeynep Elif Ayse Despina Selin Ioanna Ayşe Gülşen".split()]
    + [(n, "m") for n in "Nikos Yannis Emre Mehmet Burak Kostas Stavros Kerem Çağan Barış".split()],
    "arabic": [(n, "f") for n in "Fatima Layla Aisha Yasmin Noor Mariam Salma Huda Rania Dalia".split()]
    + [(n, "m") for n in "Omar Youssef Khalid Tariq Karim Hassan Samir Bilal Ziad Faisal".split()],
    "persian": [(n, "f") for n in "Shirin Parisa Leila Nasrin Mahsa Roya".split()]
    + [(n, "m") for n in "Dariush Kian Arash Babak Reza Cyrus".split()],
    "south_asian": [(n, "f") for n in "Priya Ananya Divya Kavya Meera Nisha Riya Sunita Lakshmi Aditi Farah Sana".split()]
    + [(n, "m") for n in "Arjun Rohan Vikram Rahul Sanjay Aditya Karthik Imran Nikhil Pranav Siddharth Harish".split()],
    "chinese": [(n, "f") for n in "Mei Xiu Ying Lan Hui Jing Fang Yan Lihua Xinyi".split()]
    + [(n, "m") for n in "Wei Jun Hao Lei Tao Bo Qiang Zhiwei Yichen Ming".split()],
    "japanese": [(n, "f") for n in "Yuki Sakura Haruka Aiko Emi Naomi Rin Misaki Ayaka Kaori".split()]
    + [(n, "m") for n in "Haruto Kenji Takeshi Daiki Ren Sota Hiroshi Kaito Ryo Yuto".split()],
    "korean": [(n, "f") for n in "Jiwoo Seoyeon Minji Hayoon Soyeon Eunji Yuna Dahye".split()]
    + [(n, "m") for n in "Minjun Seojun Jihoon Dohyun Hyunwoo Taeyang Junho Sungmin".split()],
    "vietnamese_thai": [(n, "f") for n in "Linh Mai Thao Ngoc Anh Kanya Malee Siriporn".split()]
    + [(n, "m") for n in "Minh Duc Quang Tuan Somchai Anan Kiet Phong".split()],
    "indonesian_filipino": [(n, "f") for n in "Ayu Dewi Putri Sari Maricel Rosalie Jasmine Lorna".split()]
    + [(n, "m") for n in "Budi Agus Rizky Bayu Paolo Jericho Ramon Dario".split()],
    "african": [(n, "f") for n in "Amara Chiamaka Ngozi Zanele Thandiwe Wanjiru Abena Ayodele Nia Folake Imani Zuri".split()]
    + [(n, "m") for n in "Kwame Chinedu Emeka Sipho Tendai Kofi Oluwaseun Babajide Jabari Themba Kamau Yaw".split()],
    "latin_american": [(n, "f") for n in "Guadalupe Fernanda Renata Luciana Paloma Itzel Araceli Marisol Xóchitl Mónica".split()]
    + [(n, "m") for n in "Santiago Emiliano Leonardo Ricardo Andres Octavio Fabian Mauricio Raúl Joaquín".split()],
    "hebrew": [(n, "f") for n in "Noa Tamar Yael Shira Avital Maya".split()]
    + [(n, "m") for n in "Eitan Yonatan Ariel Noam Itai Omri".split()],
    "neutral": [(n, "n") for n in "Alex Sam Robin Jordan Charlie Taylor Casey Riley Quinn Avery Morgan Jamie Rowan Sasha Ari Kit".split()],
}

SURNAMES: dict[str, list[str]] = {
    "english": "Smith Johnson Walker Wright Thompson Hughes Clarke Turner Harrison Bennett Fletcher Holloway Pemberton Ashford Whitaker Gallagher Brennan Doyle Sullivan Murphy".split(),
    "spanish": "Garcia Fernandez Lopez Martinez Sanchez Romero Navarro Torres Dominguez Vazquez Ramos Gil Serrano Molina Ortega Muñoz Peña Núñez".split(),
    "portuguese": "Silva Santos Oliveira Pereira Costa Ferreira Almeida Carvalho Ribeiro Moreira Gonçalves Simões".split(),
    "french": "Dubois Moreau Laurent Lefebvre Girard Bonnet Dupont Lambert Fontaine Rousseau Mercier Chevalier Lefèvre Bélanger".split(),
    "german": "Muller Schneider Fischer Weber Becker Hoffmann Schulz Koch Richter Wolf Neumann Zimmermann Köhler Schröder".split(),
    "italian": "Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo".split(),
    "nordic": "Andersson Johansson Nilsson Larsen Hansen Lindqvist Berg Dahl Haugen Virtanen Sørensen Åberg".split(),
    "slavic": "Kowalski Nowak Wisniewski Ivanova Petrov Novak Horvat Kovalenko Shevchenko Jovanovic Wójcik Dvořák".split(),
    "greek_turkish": "Papadopoulos Georgiou Nikolaidis Yilmaz Kaya Demir Celik Sahin Öztürk Aydın".split(),
    "arabic": "Haddad Mansour Khalil Nasser Saleh Hamdan Farouk Aziz Rahman Qureshi".split(),
    "persian": "Karimi Hosseini Rahimi Tehrani Ahmadi Moradi".split(),
    "south_asian": "Patel Sharma Gupta Iyer Reddy Nair Chatterjee Mehta Desai Kapoor Malhotra Siddiqui".split(),
    "chinese": "Chen Wang Li Zhang Liu Yang Huang Zhao Zhou Xu Lin Guo".split(),
    "japanese": "Sato Suzuki Takahashi Tanaka Watanabe Ito Yamamoto Nakamura Kobayashi Matsumoto".split(),
    "korean": "Kim Lee Park Choi Jung Kang Yoon Han".split(),
    "vietnamese_thai": "Nguyen Tran Pham Hoang Vu Srisai Chaiyaporn Wongsakul".split(),
    "indonesian_filipino": "Santoso Wijaya Halim Reyes Cruz Bautista Villanueva Mendoza".split(),
    "african": "Okafor Adeyemi Mensah Nkosi Dlamini Mwangi Otieno Boateng Abiodun Eze Banda Mutasa".split(),
    "latin_american": "Hernandez Gutierrez Castillo Morales Vargas Rojas Aguilar Medina Ibáñez Suárez".split(),
    "hebrew": "Cohen Levi Mizrahi Peretz Friedman Katz".split(),
    "neutral": "Quinn Parker Reed Hayes Ellis Morgan Blake Foster".split(),
}

CITIES: list[str] = """Lisbon Porto Madrid Seville Valencia Barcelona Bilbao Paris Lyon Marseille Bordeaux Nantes
Toulouse Berlin Hamburg Munich Cologne Leipzig Dresden Vienna Zurich Geneva Basel Milan Turin Bologna Naples Florence
Rome Venice Amsterdam Rotterdam Utrecht Antwerp Ghent Brussels Copenhagen Aarhus Stockholm Gothenburg Oslo Bergen
Helsinki Tampere Reykjavik Dublin Cork Galway Edinburgh Glasgow Manchester Leeds Bristol Brighton Cardiff Belfast York
Prague Brno Krakow Warsaw Gdansk Wroclaw Budapest Bratislava Ljubljana Zagreb Belgrade Sofia Bucharest Athens
Thessaloniki Istanbul Izmir Ankara Tbilisi Yerevan Kyiv Lviv Vilnius Riga Tallinn Cairo Alexandria Casablanca Marrakesh
Tunis Lagos Abuja Accra Nairobi Mombasa Kampala Kigali Addis Ababa Dakar Johannesburg Durban Cape Town Windhoek Lusaka
Dubai Doha Amman Beirut Muscat Riyadh Tehran Isfahan Karachi Lahore Mumbai Pune Delhi Jaipur Bangalore Chennai Hyderabad
Kolkata Kochi Colombo Kathmandu Dhaka Bangkok Chiang Mai Hanoi Da Nang Saigon Phnom Penh Kuala Lumpur Penang Singapore
Jakarta Bandung Yogyakarta Manila Cebu Taipei Kaohsiung Hong Kong Shanghai Beijing Chengdu Shenzhen Hangzhou Seoul Busan
Tokyo Osaka Kyoto Sapporo Fukuoka Sydney Melbourne Brisbane Perth Adelaide Auckland Wellington Vancouver Toronto Montreal
Calgary Ottawa Halifax Seattle Portland Denver Austin Chicago Boston Atlanta Miami Nashville Philadelphia Minneapolis
Pittsburgh Phoenix Oakland Mexico City Guadalajara Monterrey Oaxaca Bogota Medellin Lima Cusco Quito Valparaiso
Buenos Aires Cordoba Rosario Montevideo Sao Paulo Curitiba Recife Salvador Havana San Juan""".replace("\n", " ").split("  ")[0].split()

# Multi-word cities would be split above; list them explicitly and drop their parts.
_MULTI_WORD_CITIES = ["Addis Ababa", "Cape Town", "Chiang Mai", "Da Nang", "Phnom Penh", "Kuala Lumpur", "Hong Kong",
                      "Mexico City", "Buenos Aires", "Sao Paulo", "San Juan"]
_PARTS = {p for c in _MULTI_WORD_CITIES for p in c.split()}
CITIES = [c for c in CITIES if c not in _PARTS] + _MULTI_WORD_CITIES

ORG_PREFIXES: list[str] = """Northwind Bluefin Silverline Brightpath Ironbark Cedarpoint Lumen Quantix Harborview Greenleaf
Redwood Stonebridge Clearwater Sunpeak Bramble Kestrel Orbital Meridian Vantage Helix Copperfield Tidewater Blackthorn
Amberly Foxglove Wildrose Starling Riverstone Oakhaven Pinecrest Nimbus Solstice Arcadia Everline Falcon Granite Hollow
Juniper Keystone Lighthouse Maplewood Nova Obsidian Pioneer Quartz Sable Talon Umbra Vireo Willow Zephyr Aurora Beacon
Cobalt Driftwood Ember Fjord Glacier Horizon Indigo Jasper Kinetic Lattice Mosaic Nettle Onyx Prism Quill Rook Saffron
Thistle Upland Velvet Wren Yarrow Zenith Alder Birchwood Cascade Dune Echo Flint Grove Heron Isle Jade Kelp Lark Moss
Nebula Opal Pebble Ripple Summit Tundra Vertex Marble Saltmarsh Cinder Bluebell Morrow Halcyon Larkspur""".split()

ORG_SUFFIXES: list[str] = ["Robotics", "Analytics", "Labs", "Health", "Logistics", "Studios", "Bank", "Insurance",
                           "Energy", "Foods", "Media", "Systems", "Software", "Architects", "Consulting", "Pharma",
                           "Motors", "Games", "Biotech", "Capital", "Airlines", "Hospital", "Publishing", "Textiles"]

UNIVERSITY_FORMS: list[str] = ["University of {city}", "{city} Technical University", "{city} School of Art",
                               "{city} Business School", "{city} Conservatory"]

ROLES: list[str] = """software engineer|data scientist|nurse|teacher|accountant|architect|graphic designer|pharmacist
|product manager|civil engineer|physiotherapist|chef|journalist|lawyer|paramedic|electrician|marketing manager
|UX researcher|veterinarian|dentist|librarian|translator|sales manager|mechanical engineer|lab technician|pilot
|social worker|financial analyst|project manager|barista|photographer|carpenter|research scientist|HR manager
|copywriter|radiographer|economist|game designer|sound engineer|midwife|surgeon|logistics coordinator|biologist
|tax advisor|video editor|interior designer|statistician|bookkeeper|museum curator|speech therapist|urban planner
|machine learning engineer|devops engineer|customer success manager|high school teacher|florist|tailor|baker
|police officer|firefighter|optometrist""".replace("\n", "").split("|")

PET_NAMES: list[str] = """Biscuit Pepper Mango Luna Milo Oreo Ziggy Nala Simba Coco Pickles Waffles Noodle Maple Ginger
Bruno Rocky Daisy Teddy Loki Mochi Tofu Pixel Juniper Olive Pumpkin Shadow Socks Whiskers Nugget Peanut Chewie Yoshi
Kiwi Bean Bubbles Clover Dobby Fig Gizmo Hazel Indy Jasper Kobe Lola Marble Nemo Otis Poppy Rufus Sushi Tiger Umi
Vinnie Wally Xena Yuzu Zorro Apollo Basil Cinnamon Dumpling Ernie Frodo Gus Hugo Iggy Jelly Kai Lentil Muffin Nacho
Pesto Quincy Rolo Sprout Tater Waffle Ziggy""".split()

PET_SPECIES: dict[str, list[str]] = {
    "dog": ["beagle", "labrador", "border collie", "dachshund", "golden retriever", "pug", "corgi", "greyhound",
            "poodle", "husky", "whippet", "shiba inu", "jack russell", "boxer"],
    "cat": ["tabby", "siamese", "maine coon", "persian", "ragdoll", "bengal", "sphynx", "british shorthair"],
    "rabbit": ["lop", "dwarf", "rex"],
    "parrot": ["african grey", "cockatiel", "budgie"],
    "hamster": ["syrian", "dwarf"],
    "tortoise": ["hermann's", "greek"],
}

PROJECT_NAMES: list[str] = """Project Atlas|Project Bluebird|Project Kraken|Project Lantern|Project Mercury|Project Orchid
|Project Polaris|Project Quasar|Project Saturn|Project Tempest|Project Trident|Project Vesper|Project Zephyrus
|Project Cobra|Project Delta|Project Ember|Project Falcon|Project Gemini|Project Harbor|Project Icarus|Project Jigsaw
|Project Kestrel|Project Lotus|Project Monarch|Project Nightjar|Project Onyx|Project Pegasus|Project Raven
|Project Sequoia|Project Titan|Project Umbrella|Project Voyager|Project Wildfire|Project Yeti|Project Zodiac
|Project Aurora|Project Beacon|Project Cascade|Project Dynamo|Project Everest|Project Fathom|Project Granite
|Project Hydra|Project Iris|Project Juno|Project Koala|Project Lynx|Project Magma|Project Nomad|Project Oasis
|Project Phoenix|Project Quill|Project Rainier|Project Sparrow|Project Tundra|Project Unity|Project Vortex""".replace("\n", "").split("|")

PROJECT_TOPICS: list[str] = ["a mobile banking app", "a warehouse robot", "a recommendation engine", "a hospital scheduling system",
                             "a climate dashboard", "a video game", "a new website", "a payments API", "a chatbot",
                             "a translation tool", "a fraud detection model", "an online shop", "a podcast series",
                             "a documentary", "a children's book", "a solar farm", "a bridge design", "a data pipeline",
                             "a marketing campaign", "a museum exhibition"]

EVENT_KINDS: list[tuple[str, str]] = [  # (event name form, noun used in prose)
    ("{city} Marathon", "marathon"), ("{city} Half Marathon", "half marathon"), ("{city} Jazz Festival", "festival"),
    ("{city} Book Fair", "book fair"), ("{city} Film Festival", "film festival"), ("{city} Tech Summit", "conference"),
    ("{city} Design Week", "design week"), ("{city} Food Festival", "food festival"), ("{city} Triathlon", "triathlon"),
    ("{city} Chess Open", "chess tournament"),
]

MONTHS: list[str] = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                     "October", "November", "December"]

# Observation-only facts about a person: (observation text, keyword, question topic).
SKILLS: list[str] = ["Portuguese", "Japanese", "Mandarin", "Arabic", "Swahili", "German", "Korean", "Italian",
                     "Russian", "Hindi", "Turkish", "Dutch", "Greek", "Polish", "Vietnamese", "Spanish", "French",
                     "Tagalog", "Hebrew", "Norwegian"]
INSTRUMENTS: list[str] = ["cello", "piano", "violin", "guitar", "drums", "saxophone", "flute", "ukulele", "trumpet",
                          "harp", "accordion", "bass guitar", "clarinet", "banjo"]
HOBBIES: list[str] = ["rock climbing", "bouldering", "sourdough baking", "pottery", "birdwatching", "chess", "surfing",
                      "salsa dancing", "trail running", "knitting", "woodworking", "gardening", "photography",
                      "kayaking", "calligraphy", "fencing", "board games", "scuba diving", "origami", "skateboarding",
                      "beekeeping", "archery", "crossword puzzles", "yoga", "cycling", "stand-up comedy",
                      "astronomy", "fly fishing", "embroidery", "karaoke"]
FOODS_LIKED: list[str] = ["sushi", "ramen", "dumplings", "tacos", "pho", "falafel", "paella", "lasagna", "curry",
                          "dark chocolate", "pistachio ice cream", "croissants", "kimchi", "halloumi", "mango",
                          "pad thai", "empanadas", "baklava", "risotto", "biryani"]
FOODS_DISLIKED: list[str] = ["cilantro", "olives", "mushrooms", "anchovies", "blue cheese", "licorice", "okra",
                             "eggplant", "raisins", "celery", "beetroot", "tofu", "oysters", "mayonnaise", "pickles"]
DIETS: list[str] = ["vegetarian", "vegan", "pescatarian", "gluten-free", "halal", "kosher", "dairy-free"]
MUSIC: list[str] = ["jazz", "k-pop", "techno", "classical music", "bossa nova", "heavy metal", "reggae", "flamenco",
                    "afrobeats", "folk music", "hip hop", "opera", "synthwave", "blues", "salsa music"]
ALLERGIES: list[str] = ["peanuts", "shellfish", "penicillin", "cats", "pollen", "gluten", "bee stings", "latex",
                        "sesame", "dust mites", "tree nuts", "eggs"]
CONDITIONS: list[str] = ["asthma", "type 1 diabetes", "migraines", "a bad knee", "lactose intolerance", "high blood pressure",
                         "a back injury", "celiac disease", "eczema", "insomnia"]
COLORS: list[str] = ["teal", "mustard yellow", "burgundy", "forest green", "lavender", "navy blue", "coral", "orange"]
FOOD_ALLERGIES: set[str] = {"peanuts", "shellfish", "gluten", "sesame", "tree nuts", "eggs"}
WEEKDAYS: list[str] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

# How people name their relatives and contacts besides the plain role word: family words,
# nicknames and words from other languages ("my abuela Rosa"). The relation stays the role's
# (memory-conventions.md); only the message changes. Gendered words only for gendered roles.
KIN_WORDS: dict[str, list[str]] = {
    "sister": ["sis", "big sister", "little sister", "older sister", "younger sister", "hermana", "didi"],
    "brother": ["bro", "big brother", "little brother", "older brother", "hermano", "bhai"],
    "mother": ["mum", "mom", "mama", "mamá", "ammi"],
    "father": ["dad", "papa", "papá", "baba", "pops"],
    "grandmother": ["grandma", "nana", "granny", "abuela", "oma", "nonna", "babushka"],
    "grandfather": ["grandpa", "granddad", "abuelo", "opa", "nonno"],
    "aunt": ["auntie", "tía", "tante"],
    "uncle": ["tío", "onkel", "zio"],
    "daughter": ["eldest daughter", "youngest daughter", "little girl"],
    "son": ["eldest son", "youngest son", "little boy"],
    "cousin": ["cuz", "older cousin"],
    "friend": ["buddy", "mate", "pal", "old friend"],
    "best friend": ["bestie", "bff", "best mate"],
    "coworker": ["colleague", "work buddy", "teammate at work"],
    "boss": ["manager", "supervisor", "line manager"],
    "neighbor": ["neighbour", "next-door neighbor"],
    "roommate": ["flatmate", "housemate"],
    "mentor": ["old mentor", "PhD advisor"],
    "partner": ["other half", "significant other"],
    "wife": ["missus", "better half"],
    "husband": ["hubby", "better half"],
    "girlfriend": ["gf"],
    "boyfriend": ["bf"],
}


def bucket(item: str) -> Split:
    """Stable 70/15/15 assignment of a string to a split; the same string lands in the same split
    whichever pool it comes from (Quinn the first name and Quinn the surname), so splits stay disjoint."""
    value = zlib.crc32(item.lower().encode("utf-8")) % 20
    if value < 14:
        return "train"
    if value < 17:
        return "validation"
    return "test"


def split_pool(items: list[str], split: Split) -> list[str]:
    """The part of `items` that belongs to `split` (deduplicated, order kept)."""
    return [item for item in dict.fromkeys(items) if bucket(item) == split]


@dataclass(frozen=True)
class Pools:
    """Everything one split may draw from; name-like pools are disjoint across splits."""

    first_names: dict[str, list[tuple[str, str]]]  # culture -> [(name, pronoun set)]
    surnames: dict[str, list[str]]
    cities: list[str]
    org_prefixes: list[str]
    pet_names: list[str]
    project_names: list[str]


@lru_cache(maxsize=None)
def pools_for(split: Split) -> Pools:
    """Cultures left without first names or surnames in a split are dropped from that split."""
    first: dict[str, list[tuple[str, str]]] = {}
    sur: dict[str, list[str]] = {}
    for culture, names in FIRST_NAMES.items():
        firsts = [(n, g) for n, g in dict.fromkeys(names) if bucket(n) == split]
        lasts = split_pool(SURNAMES[culture], split)
        if len(firsts) >= 2 and lasts:
            first[culture], sur[culture] = firsts, lasts
    return Pools(
        first_names=first,
        surnames=sur,
        cities=split_pool(CITIES, split),
        org_prefixes=split_pool(ORG_PREFIXES, split),
        pet_names=split_pool(PET_NAMES, split),
        # "Project Kestrel" goes where "Kestrel" (an organisation prefix too) goes
        project_names=[p for p in dict.fromkeys(PROJECT_NAMES) if bucket(p.split()[-1]) == split],
    )
