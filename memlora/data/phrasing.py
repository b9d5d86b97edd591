"""Phrasing banks: how users state, change, retract and ask about each kind of fact, and how the
assistant answers.

Template syntax: `{slot}` is a fact value (never altered by typos or casing), `{ref}` the way a
third person is referred to (name, "my sister", a pronoun), `[is|are]` picks the verb form for
a singular or a "they" subject. Fact-stating banks are split across train/validation/test by
position (see `bank_for`); glue (openers, connectors, acknowledgements, small talk) is shared.
"""

from __future__ import annotations

from memlora.data.vocab import Split

# --- statements: (kind, subject) -> templates; subject "user" speaks in the first person -------
STATE: dict[tuple[str, str], list[str]] = {
    ("name", "user"): [
        "I'm {name}", "my name is {name}", "this is {name}", "{name} here", "I am {name}",
        "you can call me {name}, that's my full name", "name's {name}", "I'm {name}, nice to meet you",
        "let me introduce myself, I'm {name}", "my name's {name}",
    ],
    ("works_at", "user"): [
        "I work at {org}", "I'm employed at {org}", "I've been working for {org} for a while now",
        "my employer is {org}", "I just got a job at {org}", "I work for {org}", "I'm at {org} these days",
        "I joined {org} last year", "I have a job at {org}", "I'm on staff at {org}",
        "my day job is at {org}", "I earn my living at {org}", "I started working at {org} recently",
        "{org} is where I work",
    ],
    ("works_at", "person"): [
        "{ref} [works|work] at {org}", "{ref} [is|are] employed by {org}", "{ref} just joined {org}",
        "{ref} [has|have] a job at {org}", "{ref} [works|work] for {org}", "{ref} [is|are] with {org} now",
        "{ref} got hired by {org}", "{org} is where {ref} [works|work]",
    ],
    ("lives_in", "user"): [
        "I live in {city}", "I'm based in {city}", "home for me is {city}", "I'm living in {city} at the moment",
        "I reside in {city}", "I've lived in {city} for a few years", "my place is in {city}",
        "I stay in {city}", "I'm in {city}", "I call {city} home", "I live over in {city}", "my flat is in {city}",
    ],
    ("lives_in", "person"): [
        "{ref} [lives|live] in {city}", "{ref} [is|are] based in {city}", "{ref} [has|have] a place in {city}",
        "{ref} [lives|live] over in {city}", "{ref} [resides|reside] in {city}", "{ref} [calls|call] {city} home",
        "{ref} [is|are] living in {city} now",
    ],
    ("born_in", "user"): [
        "I'm originally from {hometown}", "I grew up in {hometown}", "I was born in {hometown}",
        "I come from {hometown}", "{hometown} is my hometown", "I was raised in {hometown}",
        "my hometown is {hometown}",
    ],
    ("studied_at", "user"): [
        "I studied at {uni}", "I went to {uni}", "I graduated from {uni}", "I did my degree at {uni}",
        "I'm an alumnus of {uni}", "I got my diploma from {uni}", "{uni} is where I studied",
    ],
    ("role", "user"): [
        "I'm a {role}", "I work as a {role}", "I'm a {role} by trade", "my job is {role}",
        "I've been a {role} for years", "I make a living as a {role}", "by profession I'm a {role}",
        "my profession is {role}", "I'm working as a {role}",
    ],
    ("role", "person"): [
        "{ref} [is|are] a {role}", "{ref} [works|work] as a {role}", "{ref} [is|are] a {role} by profession",
        "{ref} [makes|make] a living as a {role}", "{ref} trained as a {role}",
    ],
    ("pet", "user"): [
        "I have a {species} called {pet}", "my {species} is named {pet}", "I've got a {species}, {pet}",
        "we have a {species} named {pet}", "I adopted a {species} called {pet}", "{pet} is my {species}",
        "I own a {species}, her name is {pet}", "my {species}'s name is {pet}", "say hi to {pet}, my {species}",
    ],
    ("breed", "pet"): [
        "{pet} is a {breed}", "{pet} is a {breed}, by the way", "{pet}'s breed is {breed}",
        "{pet} is a purebred {breed}", "{pet} is a little {breed}",
    ],
    ("works_on", "user"): [
        "I'm working on {project}", "I lead {project}", "I'm part of {project}", "I've been assigned to {project}",
        "my main project is {project}", "I'm on {project} at work", "these days I work on {project}",
    ],
    ("topic", "project"): [
        "{project} is {topic}", "{project} is basically {topic}", "with {project} we're building {topic}",
        "the goal of {project} is {topic}", "{project} is about {topic}",
    ],
    ("registered_for", "user"): [
        "I signed up for the {event}", "I'm registered for the {event}", "I'm going to the {event}",
        "I entered the {event}", "I'll be at the {event}", "I got a ticket for the {event}",
    ],
    ("month", "event"): [
        "the {event} is in {month}", "the {event} takes place in {month}", "the {event} happens in {month}",
        "the {event} is scheduled for {month}",
    ],
    ("language", "user"): [
        "I speak {lang}", "I'm fluent in {lang}", "I can speak {lang}", "I grew up speaking {lang}",
        "I speak {lang} pretty well", "I'm a native {lang} speaker", "I know {lang}",
    ],
    ("language", "person"): [
        "{ref} [speaks|speak] {lang}", "{ref} [is|are] fluent in {lang}", "{ref} [speaks|speak] {lang} at home",
    ],
    ("instrument", "user"): [
        "I play the {instrument}", "I've played the {instrument} since I was a kid", "I'm learning the {instrument}",
        "I play {instrument} in a band", "I practice the {instrument} every evening",
    ],
    ("hobby", "user"): [
        "I'm really into {hobby}", "I love {hobby}", "my hobby is {hobby}", "I spend my weekends on {hobby}",
        "I got into {hobby} recently", "{hobby} is my thing", "I do {hobby} for fun", "I'm obsessed with {hobby}",
    ],
    ("hobby", "person"): [
        "{ref} [loves|love] {hobby}", "{ref} [is|are] really into {hobby}", "{ref} [does|do] {hobby} every weekend",
        "{ref} got into {hobby}",
    ],
    ("likes_food", "user"): [
        "I love {food}", "{food} is my favorite food", "I could eat {food} every day", "I'm a big fan of {food}",
        "I really like {food}", "nothing beats {food} for me",
    ],
    ("dislikes_food", "user"): [
        "I can't stand {dislike}", "I hate {dislike}", "I don't eat {dislike}", "please no {dislike} for me",
        "I really dislike {dislike}", "{dislike} is gross to me", "I avoid {dislike}",
    ],
    ("diet", "user"): [
        "I'm {diet}", "I eat {diet}", "I keep a {diet} diet", "I've been {diet} for years", "I follow a {diet} diet",
        "I went {diet} last year",
    ],
    ("music", "user"): [
        "I listen to a lot of {music}", "I love {music}", "{music} is my favorite kind of music", "I'm a huge {music} fan",
        "mostly I listen to {music}",
    ],
    ("allergy", "user"): [
        "I'm allergic to {allergy}", "I have an allergy to {allergy}", "{allergy} give me a bad allergic reaction",
        "I've got a {allergy} allergy", "I can't be around {allergy}, I'm allergic", "I found out I'm allergic to {allergy}",
    ],
    ("allergy", "person"): [
        "{ref} [is|are] allergic to {allergy}", "{ref} [has|have] an allergy to {allergy}",
        "{ref} [reacts|react] badly to {allergy}, it's an allergy",
    ],
    ("condition", "user"): [
        "I have {condition}", "I've got {condition}", "I live with {condition}", "I was diagnosed with {condition}",
        "I deal with {condition}",
    ],
    ("birthday", "user"): [
        "my birthday is on {birthday}", "I was born on {birthday}", "my birthday's {birthday}",
        "I celebrate my birthday on {birthday}", "{birthday} is my birthday",
    ],
    ("color", "user"): [
        "my favorite color is {color}", "I love the color {color}", "{color} is my favourite colour",
        "I like everything in {color}",
    ],
}

# Third persons are introduced with their role word ({rw}: sister, boss, ...).
STATE[("person", "user")] = [
    "my {rw} is called {name}", "{name} is my {rw}", "I have a {rw}, {name}", "my {rw}'s name is {name}",
    "there's my {rw} {name}", "I should mention my {rw}, {name}", "you should know about my {rw} {name}",
    "my {rw} {name} is great", "I've got a {rw} named {name}", "{name}, my {rw}, says hi",
]

# Two facts in one clause: (kinds) -> templates. Slots of both kinds appear.
COMBO: dict[tuple[str, ...], list[str]] = {
    ("role", "works_at"): [
        "I'm a {role} at {org}", "I work as a {role} for {org}", "I'm employed as a {role} at {org}",
        "I've been a {role} at {org} for two years", "I got hired as a {role} by {org}", "{org} hired me as a {role}",
        "I'm the new {role} at {org}",
    ],
    ("pet", "breed"): [
        "I have a {breed} called {pet}", "my {species} {pet} is a {breed}", "we adopted a {breed} named {pet}",
        "I've got a {breed}, {pet}", "{pet} is my {breed}", "my {breed} {pet} just turned three",
    ],
    ("works_on", "topic"): [
        "I'm working on {project}, {topic}", "my main project is {project}: {topic}",
        "I lead {project}, which is {topic}", "at work I'm on {project}, basically {topic}",
    ],
    ("registered_for", "month"): [
        "I signed up for the {event} in {month}", "I'm going to the {event} this {month}",
        "I registered for the {event}, it's in {month}", "I'll be at the {event} in {month}",
    ],
    ("person", "lives_in"): [
        "my {rw} {name} lives in {city}", "my {rw} {name} is based in {city}", "{name}, my {rw}, lives in {city}",
        "my {rw} is {name} and [she|he|they] [lives|live] in {city}", "I have a {rw}, {name}, who lives in {city}",
    ],
    ("person", "works_at"): [
        "my {rw} {name} works at {org}", "{name}, my {rw}, works for {org}", "my {rw} {name} just joined {org}",
        "my {rw} is {name}, [she|he|they] [works|work] at {org}",
    ],
    ("person", "role"): [
        "my {rw} {name} is a {role}", "{name}, my {rw}, works as a {role}", "my {rw} {name} trained as a {role}",
    ],
}

# Changing a value: (kind, subject) -> templates with {old} / {new} values.
UPDATE: dict[tuple[str, str], list[str]] = {
    ("works_at", "user"): [
        "I left {old} and started at {new}", "big news: I quit {old}, I'm at {new} now", "I switched jobs, I'm at {new} now",
        "I don't work at {old} anymore, I joined {new}", "new job! I'm working for {new} now",
        "I moved from {old} to {new} last week", "I started a new position at {new}, goodbye {old}",
        "as of this month I work at {new} instead of {old}",
    ],
    ("works_at", "person"): [
        "{ref} left {old} and [works|work] at {new} now", "{ref} changed jobs, [she's|he's|they're] at {new} now",
        "{ref} [doesn't|don't] work at {old} anymore, [she|he|they] joined {new}",
    ],
    ("lives_in", "user"): [
        "we moved to {new}", "I just moved from {old} to {new}", "I don't live in {old} anymore, I'm in {new} now",
        "I relocated to {new}", "I packed up and moved to {new} last month", "new city for me: I live in {new} now",
        "I left {old}, home is {new} now", "I finally moved to {new}",
    ],
    ("lives_in", "person"): [
        "{ref} moved to {new}", "{ref} [doesn't|don't] live in {old} anymore, [she|he|they] moved to {new}",
        "{ref} relocated from {old} to {new}", "{ref} [lives|live] in {new} now",
    ],
    ("partner", "user"): [
        "{old} and I broke up. I'm seeing someone new, {new}", "I'm not with {old} anymore; my new partner is {new}",
        "I split up with {old}, and now I'm dating {new}", "new relationship: I'm with {new} now, not {old}",
        "things ended with {old}. {new} is my partner now",
    ],
    ("role", "user"): [
        "I'm not a {old} anymore, I retrained as a {new}", "I changed careers: I'm a {new} now",
        "I work as a {new} now instead of a {old}", "I got promoted, I'm a {new} now",
    ],
    ("diet", "user"): [
        "I'm not {old} anymore, I'm {new} now", "I switched from {old} to {new}", "these days I'm {new}",
    ],
}

# Correcting a value that was stated wrongly.
CORRECT: dict[tuple[str, str], list[str]] = {
    ("works_at", "user"): [
        "sorry, I meant I work at {new}, not {old}", "correction: my employer is {new}, not {old}",
        "actually it's {new}, not {old}, where I work", "wait, I got that wrong: I work at {new}",
        "I misspoke earlier, it's {new}, not {old}",
    ],
    ("lives_in", "user"): [
        "actually it's {new}, not {old}", "sorry, I live in {new}, not {old}", "correction: I'm based in {new}, not {old}",
        "I said {old} but I meant {new}", "wait, scratch that, I live in {new}", "oops, it's {new} where I live, not {old}",
    ],
    ("lives_in", "person"): [
        "sorry, {ref} [lives|live] in {new}, not {old}", "correction: {ref} [is|are] in {new}, not {old}",
        "I mixed it up, {ref} [lives|live] in {new}", "actually {ref} [is|are] based in {new}, not {old}",
    ],
    ("works_at", "person"): [
        "sorry, {ref} [works|work] at {new}, not {old}", "correction: {ref} [is|are] at {new}, not {old}",
        "I mixed it up, {ref} [works|work] for {new}",
    ],
    ("born_in", "user"): [
        "actually I grew up in {new}, not {old}", "sorry, my hometown is {new}, not {old}",
        "correction: I'm originally from {new}",
    ],
    ("allergy", "user"): [
        "sorry, I'm allergic to {new}, not {old}", "correction: my allergy is to {new}, not {old}",
        "I mixed that up, it's {new} I'm allergic to",
    ],
    ("breed", "pet"): [
        "actually {pet} is a {new}, not a {old}", "sorry, {pet}'s a {new}, I mixed that up",
        "correction: {pet} is a {new}",
    ],
}

# Asking the assistant to forget: (kind, subject) -> templates ({value}, {ref}).
FORGET: dict[tuple[str, str], list[str]] = {
    ("lives_in", "person"): [
        "please forget where {ref} [lives|live]", "can you delete where {ref} [lives|live]? [she|he|they] asked me to keep it private",
        "remove {ref}'s address city from your memory", "don't keep where {ref} [lives|live], please forget it",
    ],
    ("works_at", "person"): [
        "please forget where {ref} [works|work]", "delete the bit about {ref}'s job at {value}",
        "forget that {ref} [works|work] at {value}",
    ],
    ("person", "user"): [
        "please forget everything about {value}", "delete {value} from your memory", "forget about my {rw} {value}, please",
        "can you remove {value} completely?", "I'd rather you didn't remember {value}, please delete it",
    ],
    ("allergy", "user"): [
        "forget that I'm allergic to {value}", "please delete my allergy info", "remove the note about my {value} allergy",
    ],
    ("condition", "user"): [
        "please forget my health info about {value}", "delete the note that I have {value}", "forget that I have {value}",
    ],
    ("hobby", "user"): [
        "forget the {value} thing, I gave it up", "please delete that I'm into {value}", "remove {value} from my hobbies",
    ],
    ("birthday", "user"): [
        "please forget my birthday", "delete my birthday from memory", "I'd rather you didn't store my birthday, forget it",
    ],
    ("lives_in", "user"): [
        "please forget where I live", "delete my city from your memory", "don't store where I live anymore, forget it",
    ],
    ("pet", "user"): [
        "please forget about {value}", "delete my {species} {value} from memory", "remove {value} from your memory please",
    ],
    ("condition", "person"): [],
}

# Questions: (kind, subject, how the subject is named) -> templates. "name" addressing uses the
# entity name, "role" the role word (a two-hop question).
ASK: dict[tuple[str, str, str], list[str]] = {
    ("name", "user", "-"): ["what's my name?", "do you remember my name?", "who am I?", "what is my full name?"],
    ("works_at", "user", "-"): ["where do I work?", "who's my employer again?", "which company do I work for?",
                                "remind me where I work?", "where am I working these days?", "what company am I at?"],
    ("works_at", "person", "name"): ["where does {name} work?", "who does {name} work for?", "which company is {name} at?"],
    ("works_at", "person", "role"): ["where does my {rw} work?", "who employs my {rw}?", "which company is my {rw} at?"],
    ("lives_in", "user", "-"): ["where do I live?", "which city am I based in?", "what city do I live in?",
                                "remind me where I live?"],
    ("lives_in", "person", "name"): ["where does {name} live?", "which city is {name} in?", "where is {name} based?"],
    ("lives_in", "person", "role"): ["where does my {rw} live?", "which city does my {rw} live in?",
                                     "where is my {rw} based these days?"],
    ("born_in", "user", "-"): ["where am I from originally?", "where did I grow up?", "what's my hometown?"],
    ("studied_at", "user", "-"): ["where did I study?", "which university did I go to?", "where did I get my degree?"],
    ("role", "user", "-"): ["what do I do for a living?", "what's my job?", "what is my profession?"],
    ("role", "person", "name"): ["what does {name} do for a living?", "what's {name}'s job?"],
    ("role", "person", "role"): ["what does my {rw} do for work?", "what's my {rw}'s job?"],
    ("person", "user", "-"): ["what's my {rw}'s name?", "what is my {rw} called?", "remind me of my {rw}'s name?"],
    ("pet", "user", "-"): ["what's my {species}'s name?", "what is my {species} called?", "what did I name my {species}?"],
    ("breed", "pet", "name"): ["what breed is {pet}?", "what kind of {species} is {pet}?"],
    ("breed", "pet", "role"): ["what breed is my {species}?", "what kind of {species} do I have?"],
    ("works_on", "user", "-"): ["what project am I working on?", "which project do I lead?", "what's my project called?"],
    ("topic", "project", "name"): ["what is {project} about?", "what are we building in {project}?"],
    ("topic", "project", "role"): ["what's the project I work on about?", "what is my project building?"],
    ("registered_for", "user", "-"): ["which event did I sign up for?", "what event am I registered for?"],
    ("month", "event", "name"): ["when is the {event}?", "what month is the {event}?"],
    ("month", "event", "role"): ["when is the {event_noun} I signed up for?", "what month is my {event_noun}?"],
    ("language", "user", "-"): ["what languages do I speak?", "which language do I speak besides English?"],
    ("language", "person", "name"): ["what language does {name} speak?"],
    ("language", "person", "role"): ["what language does my {rw} speak?"],
    ("instrument", "user", "-"): ["which instrument do I play?", "what instrument do I play?"],
    ("hobby", "user", "-"): ["what's my hobby?", "what do I do for fun?", "what am I into these days?"],
    ("hobby", "person", "name"): ["what is {name} into?", "what's {name}'s hobby?"],
    ("hobby", "person", "role"): ["what's my {rw}'s hobby?", "what is my {rw} into?"],
    ("likes_food", "user", "-"): ["what's my favorite food?", "what food do I love?"],
    ("dislikes_food", "user", "-"): ["is there any food I can't stand?", "what food do I hate?", "what should you never suggest I eat?"],
    ("diet", "user", "-"): ["what's my diet?", "do I have any dietary restrictions?", "what kind of diet do I follow?"],
    ("music", "user", "-"): ["what music do I like?", "what's my favorite kind of music?"],
    ("allergy", "user", "-"): ["what am I allergic to?", "do I have any allergies?", "any allergies I told you about?"],
    ("allergy", "person", "name"): ["what is {name} allergic to?", "does {name} have any allergies?"],
    ("allergy", "person", "role"): ["what's my {rw} allergic to?", "does my {rw} have an allergy?"],
    ("condition", "user", "-"): ["what health condition do I have?", "do I have any health issues you know of?"],
    ("birthday", "user", "-"): ["when is my birthday?", "what's my birthday?", "when was I born?"],
    ("color", "user", "-"): ["what's my favorite color?", "which color do I like most?"],
    ("partner", "user", "-"): ["who is my partner?", "who am I dating?", "what's my partner's name?"],
}

# How the assistant states a fact back (replies and grounded answers).
SAY: dict[tuple[str, str], str] = {
    ("name", "user"): "you're {name}",
    ("works_at", "user"): "you work at {org}",
    ("works_at", "person"): "{name} works at {org}",
    ("lives_in", "user"): "you live in {city}",
    ("lives_in", "person"): "{name} lives in {city}",
    ("born_in", "user"): "you're from {hometown}",
    ("studied_at", "user"): "you studied at {uni}",
    ("role", "user"): "you work as a {role}",
    ("role", "person"): "{name} is a {role}",
    ("person", "user"): "your {rw} is {name}",
    ("pet", "user"): "your {species} is called {pet}",
    ("breed", "pet"): "{pet} is a {breed}",
    ("works_on", "user"): "you work on {project}",
    ("topic", "project"): "{project} is {topic}",
    ("registered_for", "user"): "you signed up for the {event}",
    ("month", "event"): "the {event} is in {month}",
    ("language", "user"): "you speak {lang}",
    ("language", "person"): "{name} speaks {lang}",
    ("instrument", "user"): "you play the {instrument}",
    ("hobby", "user"): "you're into {hobby}",
    ("hobby", "person"): "{name} is into {hobby}",
    ("likes_food", "user"): "you love {food}",
    ("dislikes_food", "user"): "you can't stand {dislike}",
    ("diet", "user"): "you're {diet}",
    ("music", "user"): "you like {music}",
    ("allergy", "user"): "you're allergic to {allergy}",
    ("allergy", "person"): "{name} is allergic to {allergy}",
    ("condition", "user"): "you have {condition}",
    ("birthday", "user"): "your birthday is {birthday}",
    ("color", "user"): "your favorite color is {color}",
    ("partner", "user"): "your partner is {name}",
}

UNKNOWN_REPLIES: list[str] = [
    "I don't know, you haven't told me that.", "I don't have that in memory.", "You haven't mentioned that to me yet.",
    "I'm not sure: nothing about that is stored in my memory.", "I don't know. If you tell me, I'll remember it.",
]
FORGOTTEN_REPLIES: list[str] = [
    "I don't have that in memory anymore.", "I don't know: that's no longer stored in my memory.",
    "Nothing about that is in my memory now.", "I don't have that stored.",
]
ACKS: list[str] = ["Got it", "Noted", "Thanks, I'll remember that", "Okay", "Good to know", "Understood", "Sure thing",
                   "Thanks for telling me", "All right", "Great"]
FORGET_REPLIES: list[str] = ["Done, I've forgotten that.", "Okay, I deleted it from memory.", "Removed. I won't keep that.",
                             "Done: that's gone from my memory.", "Sure, I've deleted it."]
GREETING_REPLIES: list[str] = ["Nice to meet you, {first}!", "Hi {first}, good to meet you.", "Welcome, {first}!",
                               "Hello {first}!"]

OPENERS: list[str] = ["", "", "", "hi! ", "hey, ", "oh, ", "by the way, ", "btw ", "quick update: ", "fyi ", "so, ",
                      "just so you know, ", "one more thing: ", "hello again! ", "good morning! ", "news: ", "ok so "]
QUESTION_OPENERS: list[str] = ["hey, ", "hi! ", "quick question: ", "oh, ", "hmm, ", "by the way, ", "btw, ",
                               "remind me, ", "sorry, ", "wait, "]
CONNECTORS: list[str] = [". ", ", and ", ". Also, ", "; ", ". Oh and ", ". Plus ", " and ", ". "]
CLOSERS: list[str] = ["", "", "", ".", "!", " :)", ". Just so you know.", ", remember that.", " haha", "."]

# Small talk and general requests: (user message, reply). No memory operation.
SMALL_TALK: list[tuple[str, str]] = [
    ("Can you recommend a good book on statistics?", "\"Statistical Rethinking\" by Richard McElreath is a great start."),
    ("What's a quick dinner idea for tonight?", "A vegetable stir-fry with rice: ready in twenty minutes."),
    ("How do I boil an egg properly?", "Put it in boiling water for 7 minutes, then cool it in cold water."),
    ("Tell me a fun fact.", "Octopuses have three hearts."),
    ("What's the capital of Australia?", "Canberra."),
    ("Can you help me write a short thank-you note?", "Sure: \"Thank you so much for your help, it meant a lot to me.\""),
    ("How many minutes are in a day?", "1,440 minutes."),
    ("Any tips for sleeping better?", "Keep a regular schedule, avoid screens before bed and keep the room cool and dark."),
    ("what's 15% of 80?", "15% of 80 is 12."),
    ("How are you today?", "I'm doing well, thanks for asking! How can I help?"),
    ("Give me a synonym for 'happy'.", "Joyful."),
    ("How do I convert Celsius to Fahrenheit?", "Multiply by 9/5 and add 32."),
    ("Suggest a name for a team chat channel.", "How about \"#coffee-and-code\"?"),
    ("What's a good stretch for a stiff neck?", "Slowly tilt your ear towards your shoulder and hold for 20 seconds on each side."),
    ("thanks, that's all for now", "You're welcome! Talk soon."),
    ("Can you explain what a haiku is?", "A haiku is a short poem of three lines with 5, 7 and 5 syllables."),
    ("Write me a one-line joke.", "I told my computer a joke about UDP, but I'm not sure it got it."),
    ("What's the difference between weather and climate?", "Weather is day to day; climate is the long-term average."),
    ("How long should I steep green tea?", "About two to three minutes at around 80°C."),
    ("Is it 'affect' or 'effect' here: the rain will ___ the game?", "\"Affect\": it's the verb."),
    ("What's a good way to start learning to code?", "Pick Python, follow a beginner course and build a tiny project you care about."),
    ("good night!", "Good night, sleep well!"),
    ("hmm, let me think about it", "Take your time."),
    ("Can you give me three ideas for a rainy afternoon?", "A board game, baking something new, or a movie marathon."),
    ("How many legs does a spider have?", "Eight."),
    ("What does 'carpe diem' mean?", "\"Seize the day\" in Latin."),
    ("Help me pick: pasta or soup for lunch?", "Soup if it's cold out, pasta if you need energy for the afternoon."),
    ("lol ok", "😄 Anything else?"),
    ("What's the boiling point of water at sea level?", "100°C, or 212°F."),
    ("Can you summarize the plot of Romeo and Juliet in one sentence?",
     "Two young lovers from feuding families marry in secret, and a chain of misunderstandings ends in both their deaths."),
    ("What's a polite way to decline a meeting?", "\"Thanks for the invite; I can't make it, but please send me the notes.\""),
    ("How do I say 'thank you' in Japanese?", "Arigatou (ありがとう)."),
    ("Give me a motivational quote.", "\"It always seems impossible until it's done.\" (Nelson Mandela)"),
    ("What's the square root of 144?", "12."),
    ("Remind me what HTML stands for?", "HyperText Markup Language."),
    ("ugh, mondays", "Hang in there! Anything I can help with?"),
    ("Can you suggest a podcast about history?", "\"Hardcore History\" by Dan Carlin is a classic."),
    ("What's a good gift for a coworker?", "A nice notebook, good coffee or a small plant are safe choices."),
    ("How do I make a to-do list that actually works?", "Keep it short: three must-dos a day, and write the next action, not the goal."),
    ("What's today's weather like?", "I can't check the weather, but a weather app will tell you."),
]


_BANKS: dict[tuple[int, str], list[str]] = {}


def bank_for(templates: list[str], split: Split) -> list[str]:
    """The disjoint share of a phrasing bank that a split may use (every bank has at least three)."""
    key = (id(templates), split)
    cached = _BANKS.get(key)
    if cached is None:
        cached = _BANKS[key] = _bank_for(templates, split)
    return cached


def _bank_for(templates: list[str], split: Split) -> list[str]:
    n = len(templates)
    chosen: list[str] = []
    for i, template in enumerate(templates):
        if i % 7 == 6 or (n < 7 and i == n - 1):
            owner = "test"
        elif i % 7 == 5 or (n < 7 and i == n - 2):
            owner = "validation"
        else:
            owner = "train"
        if owner == split:
            chosen.append(template)
    return chosen or templates[:1]
