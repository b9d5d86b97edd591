"""Phrasing banks: how users state, change, retract and ask about each kind of fact, and how the
assistant answers.

Template syntax: `{slot}` is a fact value (never altered by typos or casing), `{ref}` the way a
third person is referred to (name, "my sister", a pronoun), `[is|are]` picks the verb form for
a singular or a "they" subject. Fact-stating banks are split across train/validation/test by
position (see `bank_for`); glue (openers, connectors, acknowledgements, small talk) is shared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
        "our {species} is called {pet}", "we just got a {species}, we named him {pet}",
    ],
    ("breed", "pet"): [
        "{pet} is a {breed}", "{pet} is a {breed}, by the way", "{pet}'s breed is {breed}",
        "{pet} is a purebred {breed}", "{pet} is a little {breed}",
    ],
    ("works_on", "user"): [
        "I'm working on {project}", "I lead {project}", "I'm part of {project}", "I've been assigned to {project}",
        "my main project is {project}", "I'm on {project} at work", "these days I work on {project}",
        "our team is building {project}", "we kicked off {project} at work and I'm on it",
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


# --- third persons' own facts, job changes, old entities -------------------------------------
# {refs} is the possessive of {ref}: "my sister's", "Ana's", "her".
STATE.update({
    ("diet", "person"): [
        "{ref} [is|are] {diet} now", "{ref} went {diet}", "{ref} [eats|eat] {diet} these days",
        "{ref} [has|have] been {diet} for years", "{ref} [keeps|keep] a {diet} diet",
    ],
    ("birthday", "person"): [
        "{refs} birthday is on {birthday}", "{ref} was born on {birthday}",
        "{ref} [celebrates|celebrate] [her|his|their] birthday on {birthday}", "{refs} birthday's {birthday}",
    ],
    ("pet", "person"): [
        "{ref} [has|have] a {species} called {pet}", "{refs} {species} is named {pet}", "{ref} just adopted a {species}, {pet}",
        "{ref} got a {species} named {pet}", "{refs} {species} {pet} is adorable",
    ],
    ("studied_at", "person"): [
        "{ref} studied at {uni}", "{ref} went to {uni}", "{ref} graduated from {uni}", "{ref} did [her|his|their] degree at {uni}",
    ],
    ("registered_for", "person"): [
        "{ref} signed up for the {event}", "{ref} [is|are] doing the {event}", "{ref} entered the {event}",
        "{ref} got a place in the {event}",
    ],
})

UPDATE[("job", "user")] = [
    "I left {old} where I was a {old_role}; now I'm a {new_role} at {new}",
    "big change: I quit my {old_role} job at {old} and started as a {new_role} at {new}",
    "I'm not a {old_role} at {old} anymore, I'm a {new_role} at {new} now",
    "new job! {new} hired me as a {new_role}, so no more {old_role} work at {old}",
    "I switched careers: from {old_role} at {old} to {new_role} at {new}",
    "goodbye {old}! I start as a {new_role} at {new} on Monday, done being a {old_role}",
]
UPDATE[("job", "person")] = [
    "{ref} quit [her|his|their] {old_role} job at {old} and [is|are] a {new_role} at {new} now",
    "{ref} left {old}; [she's|he's|they're] a {new_role} at {new} now, not a {old_role}",
    "{ref} [isn't|aren't] a {old_role} at {old} anymore, {new} hired [her|him|them] as a {new_role}",
]
CORRECT[("role", "user")] = [
    "sorry, I'm a {new}, not a {old}", "correction: I work as a {new}, not as a {old}", "I misspoke, my job is {new}, not {old}",
    "wait, I'm not a {old}, I'm a {new}",
]
CORRECT[("role", "person")] = [
    "sorry, {ref} [is|are] a {new}, not a {old}", "correction: {ref} [works|work] as a {new}",
    "I mixed it up, {ref} [is|are] a {new}, not a {old}",
]
FORGET[("works_at", "user")] = [
    "please forget where I work", "delete my employer from your memory", "forget that I work at {value}",
    "I'd rather you didn't store my company, please forget it",
]
FORGET[("diet", "person")] = ["forget what I said about {refs} diet", "please delete {refs} diet from memory",
                              "remove the note about {ref} being {value}"]
FORGET[("pet", "person")] = ["please forget {refs} {species} {value}", "delete {value} from your memory, it's {refs} {species} anyway",
                             "you can forget about {value}"]

# An entity an update left behind (the old employer, the old city), forgotten on request: the
# entity goes, and nothing else.
FORGET_OLD: dict[str, list[str]] = {
    "works_at": [
        "you can forget {value}, I don't work there anymore", "please delete my old employer {value}",
        "forget {value}, that job is long gone", "no need to keep {value} around, I left that job",
        "forget my old employer {value}, please",
    ],
    "lives_in": [
        "forget {value}, I don't live there anymore", "please delete my old city {value} from memory",
        "you can drop {value}, I moved away ages ago", "forget about {value}, that was my old place",
    ],
}

ASK.update({
    ("diet", "person", "name"): ["what does {name} eat?", "does {name} have a special diet?", "what diet is {name} on?"],
    ("diet", "person", "role"): ["what diet does my {rw} follow?", "what can my {rw} eat?", "does my {rw} have a special diet?"],
    ("birthday", "person", "name"): ["when is {name}'s birthday?", "when was {name} born?"],
    ("birthday", "person", "role"): ["when is my {rw}'s birthday?", "what's my {rw}'s birthday?"],
    ("pet", "person", "name"): ["what's {name}'s {species} called?", "what's the name of {name}'s {species}?"],
    ("pet", "person", "role"): ["what's my {rw}'s {species} called?", "what is my {rw}'s {species}'s name?"],
    ("studied_at", "person", "name"): ["where did {name} study?", "which university did {name} go to?"],
    ("studied_at", "person", "role"): ["where did my {rw} study?", "which university did my {rw} go to?"],
    ("registered_for", "person", "name"): ["which event is {name} doing?", "what did {name} sign up for?"],
    ("registered_for", "person", "role"): ["which event is my {rw} doing?", "what did my {rw} sign up for?"],
})
SAY.update({
    ("diet", "person"): "{name} is {diet}",
    ("birthday", "person"): "{name}'s birthday is {birthday}",
    ("pet", "person"): "{name} has a {species} called {pet}",
    ("studied_at", "person"): "{name} studied at {uni}",
    ("registered_for", "person"): "{name} signed up for the {event}",
})


# --- free-form details ------------------------------------------------------------------------


@dataclass(frozen=True)
class Detail:
    """A detail that fits no fixed slot (a plan, a schedule, a health note, a preference in the
    user's own words, an opinion, a date), stored as one short observation that paraphrases it.

    `says`: how a user puts it ({ref}/{refs} for a third person, {pet}, {project}, as in STATE);
    `observation`: what is stored; `keywords`: its content words, the learn fact's keywords (every
    group is in the observation and in every phrasing, so the model can copy them; the first
    group answers `question`); `reply`: the fact said back ({name}: the subject);
    `question`: a question it answers ({who}/{whos}: the subject by name or role); `forget`: a
    request to forget it. Placeholders: {x} (one of `fills`), {month}, {day}, {weekday}.
    `group`: details that would contradict or answer the same question; one per subject.
    `species`: the pets it suits (all when empty).
    """

    key: str
    subject: str  # user, person, pet, project
    topic: str  # plan, schedule, health, preference, opinion, date, life
    says: tuple[str, ...]
    observation: str
    keywords: tuple[tuple[str, ...], ...]
    reply: str
    question: str = ""
    forget: str = ""
    fills: tuple[str, ...] = ()
    group: str = ""
    species: tuple[str, ...] = ()


def _d(key: str, subject: str, topic: str, says: str, observation: str, keywords: str, reply: str,
       question: str = "", forget: str = "", fills: str = "", group: str = "", species: str = "") -> Detail:
    """A Detail from compact text: phrasings (outside [is|are] choices) and fills split on "|",
    keyword groups on "|" and the alternatives of a group on ","."""
    return Detail(key, subject, topic, tuple(re.split(r"\|(?![^\[]*\])", says)), observation,
                  tuple(tuple(group_.split(",")) for group_ in keywords.split("|")), reply, question, forget,
                  tuple(fills.split("|")) if fills else (), group or key, tuple(species.split()))


DETAILS: list[Detail] = [
    # the user: plans
    _d("study-plan", "user", "plan",
       "I'm planning to study {x} next year|next year I want to go back to school for {x}|thinking about doing a {x} "
       "degree next year|I've decided to study {x}, starting next year|if all goes well I'll start studying {x} next year",
       "Plans to study {x} next year", "{x}|next year", "you plan to study {x} next year",
       "what am I planning to study?", "forget that I'm planning to study {x}",
       "pharmacy|nursing|architecture|marine biology|graphic design|accounting|physiotherapy|psychology|"
       "veterinary medicine|midwifery|data science|linguistics"),
    _d("saving-house", "user", "plan",
       "I'm saving up to buy a house|we're saving every penny to buy a house|trying to save for a house deposit at the "
       "moment|my big goal right now is saving for a house",
       "Saving up to buy a house", "house|sav", "you're saving up to buy a house",
       "what am I saving up for?", "forget the thing about me saving for a house"),
    _d("marathon-goal", "user", "plan",
       "I want to run a marathon before I turn {x}|my goal is to run a marathon before I'm {x}|before I hit {x} I'm "
       "going to run a marathon, that's the plan",
       "Wants to run a marathon before turning {x}", "marathon|{x}", "you want to run a marathon before you turn {x}",
       "what's my running goal?", "forget my marathon goal", "30|35|40|45|50"),
    _d("driving-test", "user", "date",
       "my driving test is in {month}|I'm taking my driving test in {month}|I've got my driving test booked for "
       "{month}, wish me luck",
       "Driving test in {month}", "{month}|driving test", "your driving test is in {month}",
       "when is my driving test?", "forget about my driving test"),
    _d("quit-smoking", "user", "health",
       "I'm trying to quit smoking|I'm quitting smoking, day 5 today|trying really hard to quit smoking this year|"
       "I've decided to quit smoking for good",
       "Trying to quit smoking", "smoking|quit", "you're trying to quit smoking",
       "what am I trying to give up?", "forget that I'm quitting smoking"),
    _d("learn-sail", "user", "plan",
       "I want to learn to sail this summer|this summer I'm finally learning to sail|I booked sailing lessons for this "
       "summer",
       "Wants to learn to sail this summer", "sail|summer", "you want to learn to sail this summer",
       "what do I want to learn this summer?", "forget the sailing plan"),
    _d("baby", "user", "date",
       "we're expecting a baby in {month}|I'm pregnant, due in {month}|baby number one is due in {month}!",
       "Expecting a baby in {month}", "{month}|baby,due,pregnan", "you're expecting a baby in {month}",
       "when is the baby due?", "forget the baby news for now"),
    _d("adopt-dog", "user", "plan",
       "I'm thinking about adopting a dog|we might adopt a dog soon, still deciding|been thinking of getting a rescue dog",
       "Thinking about adopting a dog", "dog|adopt,rescue", "you're thinking about adopting a dog",
       "what pet am I thinking of getting?", "forget that I want a dog", group="dogs-and-cats"),
    _d("triathlon-training", "user", "plan",
       "I'm training for my first triathlon|training for a triathlon has taken over my life lol|I've started training "
       "for a triathlon",
       "Training for a triathlon", "triathlon", "you're training for a triathlon",
       "what am I training for?", "forget the triathlon training"),
    # the user: schedules and routines
    _d("climbing-night", "user", "schedule",
       "I go climbing every {weekday} evening|{weekday} evenings are climbing night for me|I climb at the gym on "
       "{weekday} evenings",
       "Goes climbing on {weekday} evenings", "climb|{weekday}", "you go climbing on {weekday} evenings",
       "what do I do on {weekday} evenings?", "forget my climbing night"),
    _d("wfh-day", "user", "schedule",
       "I work from home on {weekday}s|{weekday}s are my work-from-home day|I'm home-based every {weekday}, office the "
       "rest of the week",
       "Works from home on {weekday}s", "{weekday}|home", "you work from home on {weekday}s",
       "which day do I work from home?", "forget my work-from-home day", group="remote"),
    _d("evening-class", "user", "schedule",
       "I have {x} class on {weekday} nights|{weekday} night is my {x} class|I started {x} lessons, they're on {weekday}s",
       "Takes {x} lessons on {weekday}s", "{x}|{weekday}", "you have {x} lessons on {weekday}s",
       "what do I have on {weekday} nights?", "forget about my {x} lessons",
       "pottery|salsa|life drawing|improv|ceramics|watercolour"),
    _d("swim-mornings", "user", "schedule",
       "I swim before work on {weekday} mornings|{weekday} mornings I'm at the pool before work|I go swimming every "
       "{weekday} morning",
       "Swims on {weekday} mornings", "swim,pool|{weekday}", "you swim on {weekday} mornings",
       "what do I do on {weekday} mornings?", "forget the swimming thing"),
    _d("work-start", "user", "schedule",
       "I start work at {x} every day|my shift starts at {x}|I have to be at work by {x} most days",
       "Starts work at {x}", "{x}|work,shift", "you start work at {x}",
       "what time do I start work?", "forget my work hours", "6am|7am|5:30am|8am|noon|2pm"),
    _d("day-off", "user", "schedule",
       "{weekday} is my day off|I'm off work every {weekday}|I don't work {weekday}s, that's my free day",
       "Off work on {weekday}s", "{weekday}|off,free", "you have {weekday}s off",
       "which day am I off work?", "forget my day off"),
    _d("farmers-market", "user", "schedule",
       "every Saturday I go to the farmers market|I never miss the Saturday farmers market|Saturday mornings are for the "
       "farmers market",
       "Goes to the farmers market on Saturdays", "farmers market|saturday", "you go to the farmers market on Saturdays",
       "where do I go on Saturday mornings?", "forget the farmers market thing"),
    _d("run-5k", "user", "schedule",
       "I run 5k most mornings|I do a 5k run most mornings before breakfast|most mornings I go for a 5k",
       "Runs 5k most mornings", "5k|morning", "you run 5k most mornings",
       "how far do I run in the mornings?", "forget my morning runs"),
    _d("food-bank", "user", "schedule",
       "I volunteer at a food bank on weekends|weekends I help out at the local food bank|I do volunteer shifts at a food "
       "bank every weekend",
       "Volunteers at a food bank on weekends", "food bank|weekend", "you volunteer at a food bank on weekends",
       "where do I volunteer?", "forget the food bank volunteering"),
    _d("meditate", "user", "health",
       "I meditate for ten minutes before bed|every night before bed I do ten minutes of meditation|I've started "
       "meditating before bed",
       "Meditates before bed", "meditat|bed", "you meditate before bed",
       "what do I do before bed?", "forget the meditation thing", group="bedtime"),
    _d("reads-bed", "user", "preference",
       "I read for half an hour before bed every night|every night I read before sleeping|I can't fall asleep without "
       "reading a bit first",
       "Reads before bed every night", "read|bed,sleep", "you read before bed every night",
       "what do I do before bed?", "forget my bedtime reading", group="bedtime"),
    _d("night-shifts", "user", "schedule",
       "I work night shifts|I'm on night shifts at the moment, so I sleep during the day|night shifts again this month, "
       "ugh",
       "Works night shifts", "night shift", "you work night shifts",
       "what shifts do I work?", "forget the night shift thing"),
    _d("commute", "user", "life",
       "my commute is about an hour each way|I spend an hour each way commuting|it takes me an hour to get to work, "
       "each way",
       "Commutes about an hour each way", "hour|commut,work", "your commute is about an hour each way",
       "how long is my commute?", "forget my commute", group="remote"),
    # the user: health
    _d("broken-wrist", "user", "health",
       "I broke my wrist last month, still in a cast|my wrist is broken, fell off my bike last month|I'm typing "
       "one-handed, broke my wrist last month",
       "Broke a wrist last month", "wrist|broke,broken", "you broke your wrist last month",
       "what did I injure last month?", "forget about my wrist"),
    _d("blood-thinners", "user", "health",
       "I'm on blood thinners|I take blood thinners every day|my doctor has me on blood thinners now",
       "Takes blood thinners", "blood thinner", "you take blood thinners",
       "what medication am I on?", "forget that I take blood thinners"),
    _d("knee-surgery", "user", "health",
       "I'm recovering from knee surgery|I had knee surgery two weeks ago, slowly recovering|still on crutches after my "
       "knee surgery",
       "Recovering from knee surgery", "knee surgery", "you're recovering from knee surgery",
       "what am I recovering from?", "forget about my knee surgery"),
    _d("hay-fever", "user", "health",
       "I get really bad hay fever every spring|spring is the worst for my hay fever|hay fever season is killing me, "
       "happens every spring",
       "Gets hay fever every spring", "hay fever|spring", "you get hay fever every spring",
       "what bothers me every spring?", "forget the hay fever note"),
    _d("no-caffeine-late", "user", "health",
       "I can't have caffeine after {x} or I don't sleep|no caffeine for me after {x}, I'd be up all night|I stop "
       "drinking coffee at {x}, caffeine keeps me awake",
       "Avoids caffeine after {x}", "{x}|caffeine", "you avoid caffeine after {x}",
       "when do I stop having caffeine?", "forget my caffeine rule", "noon|2pm|3pm|4pm"),
    _d("short-sighted", "user", "health",
       "I'm really short-sighted, can't see a thing without my glasses|I wear glasses, very short-sighted|my eyesight is "
       "bad, I'm short-sighted",
       "Short-sighted, wears glasses", "short-sighted", "you're short-sighted and wear glasses",
       "what's wrong with my eyesight?", "forget the note about my eyesight", group="eyes"),
    _d("deaf-ear", "user", "health",
       "I'm partially deaf in my left ear|I can't hear well on my left side, partially deaf in that ear|heads up, I'm "
       "deaf in my left ear",
       "Partially deaf in the left ear", "left|deaf", "you're partially deaf in your left ear",
       "which ear am I deaf in?", "forget the thing about my ear"),
    _d("colorblind", "user", "health",
       "I'm colorblind|fun fact, I'm red-green colorblind|I'm colour-blind so I can't tell red from green",
       "Red-green colorblind", "colorblind,colour-blind", "you're red-green colorblind",
       "what's special about my eyesight?", "forget that I'm colorblind", group="eyes"),
    _d("sober", "user", "health",
       "I've been sober for {x} years now|{x} years sober this month!|I don't drink anymore, {x} years sober",
       "Sober for {x} years", "{x}|sober", "you've been sober for {x} years",
       "how long have I been sober?", "forget the sobriety note", "two|three|five|ten", group="alcohol"),
    _d("physio", "user", "health",
       "I have physio every {weekday} for my back|physio on {weekday}s, doctor's orders|I go to physiotherapy on "
       "{weekday}s",
       "Physio appointments on {weekday}s", "{weekday}|physio", "you have physio on {weekday}s",
       "when do I have physio?", "forget my physio appointments"),
    _d("heights", "user", "health",
       "I'm scared of heights|heights terrify me, no way I'm going up there|I've got a real fear of heights",
       "Afraid of heights", "heights", "you're afraid of heights",
       "what am I afraid of?", "forget that I'm scared of heights"),
    # the user: preferences in their own words
    _d("window-seat", "user", "preference",
       "I always take the window seat on planes|window seat or nothing when I fly|I hate aisle seats, always book the "
       "window seat",
       "Prefers the window seat on planes", "window seat", "you prefer the window seat on planes",
       "which seat do I like on planes?", "forget my seat preference"),
    _d("texts", "user", "preference",
       "I hate phone calls, I'd much rather text|please, texts over phone calls any day|I never pick up the phone, "
       "texting is better",
       "Prefers texting to phone calls", "text|phone", "you prefer texting to phone calls",
       "do I prefer calls or texts?", "forget that I prefer texting"),
    _d("early-riser", "user", "preference",
       "I'm a morning person, always up at {x}|I get up at {x} every day, even on weekends|up at {x} every morning, "
       "can't help it",
       "Gets up at {x} every day", "{x}|up", "you get up at {x} every day",
       "what time do I get up?", "forget what time I get up", "5|5:30|6|4:30"),
    _d("coffee-black", "user", "preference",
       "I take my coffee black|black coffee, no sugar, always|I drink my coffee black, no milk",
       "Drinks coffee black", "black|coffee", "you drink your coffee black",
       "how do I take my coffee?", "forget how I take my coffee"),
    _d("trains", "user", "preference",
       "I'd rather take the train than fly whenever I can|trains over planes for me, every time|I avoid flying, I take "
       "trains when I can",
       "Prefers trains to flying", "train|fly,plane", "you prefer trains to flying",
       "how do I like to travel?", "forget my travel preference"),
    _d("crowds", "user", "preference",
       "I can't stand crowded places|crowds stress me out, I avoid them|I hate crowded bars and concerts, too many people",
       "Avoids crowded places", "crowd", "you dislike crowded places",
       "what kind of places do I avoid?", "forget the thing about crowds"),
    _d("dark-mode", "user", "preference",
       "I use dark mode on everything|dark mode always, light mode hurts my eyes|everything I own is set to dark mode",
       "Prefers dark mode", "dark mode", "you prefer dark mode",
       "do I like light or dark mode?", "forget my dark mode thing"),
    _d("no-alcohol", "user", "preference",
       "I don't drink alcohol|I'm teetotal, no alcohol for me|alcohol's not for me, I never drink it",
       "Doesn't drink alcohol", "alcohol", "you don't drink alcohol", forget="forget that I don't drink alcohol",
       group="alcohol"),
    _d("offline-weekends", "user", "preference",
       "I stay offline on weekends, no laptop no phone|weekends are screen-free for me|I switch off completely at "
       "weekends, totally offline",
       "Stays offline on weekends", "offline,screen-free|weekend", "you stay offline on weekends",
       forget="forget my offline weekends thing"),
    # the user: opinions
    _d("film-long", "user", "opinion",
       "I thought {x} was way too long|{x} was sooo long, I nearly fell asleep|honestly {x} dragged, way too long",
       "Thinks {x} was too long", "long|{x}", "you thought {x} was too long",
       "what did I think of {x}?", "forget my film rant",
       "the new Dune film|Oppenheimer|the last Avengers film|Killers of the Flower Moon|the Barbie movie"),
    _d("pineapple-pizza", "user", "opinion",
       "pineapple on pizza is great, fight me|I'm team pineapple on pizza|honestly pineapple belongs on pizza",
       "Thinks pineapple belongs on pizza", "pineapple|pizza", "you like pineapple on pizza",
       forget="forget the pineapple pizza thing"),
    _d("open-plan", "user", "opinion",
       "I find open-plan offices really distracting|open-plan offices are the worst, I can't focus|I can't concentrate "
       "in an open-plan office",
       "Finds open-plan offices distracting", "open-plan", "you find open-plan offices distracting",
       forget="forget my open-plan office rant", group="remote"),
    _d("remote-work", "user", "opinion",
       "remote work is the best thing that ever happened to me|I love working remotely, never going back to the office|"
       "remote work suits me perfectly",
       "Prefers working remotely", "remote", "you love working remotely", forget="forget the remote work thing",
       group="remote"),
    _d("cats-better", "user", "opinion",
       "cats are better than dogs, I said what I said|I'm a cat person, cats beat dogs any day|honestly cats > dogs",
       "Thinks cats are better than dogs", "cat|dog", "you think cats are better than dogs",
       forget="forget my cats vs dogs opinion", group="dogs-and-cats"),
    _d("bike-lanes", "user", "opinion",
       "this city really needs more bike lanes|I wish the council would build more bike lanes|more bike lanes, please, "
       "cycling here is scary",
       "Wants more bike lanes in the city", "bike lane", "you want more bike lanes in the city",
       forget="forget my bike lane rant"),
    _d("book-loved", "user", "opinion",
       "I just finished {x} and loved it|{x} is the best book I've read this year|just read {x}, absolutely loved it",
       "Loved the book {x}", "{x}", "you loved {x}",
       "which book did I love recently?", "forget the book thing",
       "Pachinko|The Overstory|Circe|Piranesi|Educated|Klara and the Sun|The Remains of the Day|Braiding Sweetgrass"),
    # the user: dates
    _d("anniversary", "user", "date",
       "our wedding anniversary is on {month} {day}|{month} {day} is our anniversary, don't let me forget|we got "
       "married on {month} {day}",
       "Wedding anniversary on {month} {day}", "{month}|{day}|anniversary,married",
       "your wedding anniversary is on {month} {day}", "when is my wedding anniversary?", "forget our anniversary date"),
    _d("passport", "user", "date",
       "my passport expires in {month}|I need to renew my passport before {month}, it expires then|heads up, my "
       "passport runs out in {month}",
       "Passport expires in {month}", "{month}|passport", "your passport expires in {month}",
       "when does my passport expire?", "forget the passport thing"),
    _d("dentist", "user", "date",
       "I have a dentist appointment on {month} {day}|dentist on {month} {day}, ugh|I booked the dentist for {month} {day}",
       "Dentist appointment on {month} {day}", "{month}|{day}|dentist", "your dentist appointment is on {month} {day}",
       "when is my dentist appointment?", "forget the dentist appointment"),
    _d("lease", "user", "date",
       "my lease ends in {month}|our rental contract runs out in {month}|I have to move out in {month} when the lease "
       "ends",
       "Lease ends in {month}", "{month}|lease,rental", "your lease ends in {month}",
       "when does my lease end?", "forget the lease thing"),
    _d("holiday", "user", "date",
       "I'm off on holiday on {month} {day}|my vacation starts {month} {day}, can't wait|flying out on holiday on "
       "{month} {day}",
       "Going on holiday on {month} {day}", "{month}|{day}|holiday,vacation", "your holiday starts on {month} {day}",
       "when does my holiday start?", "forget my holiday dates"),
    # the user: life
    _d("kids", "user", "life",
       "I have {x} kids|I'm a parent of {x}|we've got {x} kids, chaos at home",
       "Parent of {x} kids", "{x}|kid,parent", "you have {x} kids",
       "how many kids do I have?", "forget how many kids I have", "two|three|four"),
    _d("left-handed", "user", "life",
       "I'm left-handed|fun fact, I'm a lefty|as a left-hander, scissors are my enemy",
       "Left-handed", "left-hand,lefty", "you're left-handed",
       "am I left- or right-handed?", "forget the left-handed thing"),
    _d("no-car", "user", "life",
       "I don't have a car, I bike everywhere|no car for me, I cycle everywhere|I sold my car, I get around by bike now",
       "Gets around by bike, no car", "bike,cycl|car", "you have no car and get around by bike",
       "how do I get around?", "forget the car thing"),
    _d("siblings", "user", "life",
       "I'm the oldest of {x} siblings|I'm the eldest of {x} kids in my family|oldest of {x}, so I'm used to being in "
       "charge",
       "Oldest of {x} siblings", "oldest,eldest|{x}", "you're the oldest of {x} siblings",
       "where am I in the family?", "forget the sibling thing", "three|four|five|six"),
    _d("choir", "user", "life",
       "I sing in a choir|I've joined a community choir, we sing on {weekday}s|choir practice is my favourite part of "
       "the week",
       "Sings in a choir", "choir", "you sing in a choir", "what group do I sing in?", "forget the choir thing"),
    _d("sign-language", "user", "life",
       "I know some sign language|I'm learning sign language|I took a sign language course last year",
       "Knows some sign language", "sign language", "you know some sign language",
       forget="forget the sign language thing"),
    # third persons
    _d("p-half-marathon", "person", "plan",
       "{ref} [is|are] training for a half marathon|{ref} signed up to run a half marathon|{ref} [is|are] out running "
       "every day, training for a half marathon",
       "Training for a half marathon", "half marathon", "{name} is training for a half marathon",
       "what is {who} training for?", "forget that {ref} [is|are] training for a half marathon"),
    _d("p-baby", "person", "life",
       "{ref} just had a baby|{ref} had a baby last week!!|big news, {ref} just became a parent",
       "Just had a baby", "baby,parent", "{name} just had a baby", forget="forget the baby news about {ref}"),
    _d("p-flying", "person", "preference",
       "{ref} [hates|hate] flying|{ref} [is|are] terrified of flying|{ref} won't get on a plane if [she|he|they] can "
       "avoid it",
       "Hates flying", "fly,plane", "{name} hates flying", forget="forget that {ref} [hates|hate] flying"),
    _d("p-broken-leg", "person", "health",
       "{ref} [is|are] recovering from a broken leg|{ref} broke [her|his|their] leg skiing|{ref} [is|are] on crutches "
       "with a broken leg",
       "Recovering from a broken leg", "leg|broke", "{name} is recovering from a broken leg",
       "what is {who} recovering from?", "forget about {refs} leg"),
    _d("p-interview", "person", "date",
       "{ref} [has|have] a job interview on {weekday}|{ref} [is|are] interviewing for a new job on {weekday}|{weekday} "
       "is {refs} big job interview",
       "Job interview on {weekday}", "{weekday}|interview", "{name} has a job interview on {weekday}",
       "when is {whos} job interview?", "forget about {refs} interview"),
    _d("p-no-coffee", "person", "preference",
       "{ref} [doesn't|don't] drink coffee|{ref} [is|are] a tea person, never coffee|{ref} gave up coffee",
       "Doesn't drink coffee", "coffee", "{name} doesn't drink coffee", forget="forget the coffee thing about {ref}"),
    _d("p-retiring", "person", "plan",
       "{ref} [is|are] retiring next year|{ref} [retires|retire] next year, finally|next year {ref} [is|are] retiring",
       "Retiring next year", "next year|retir", "{name} is retiring next year",
       "when is {who} retiring?", "forget that {ref} [is|are] retiring"),
    _d("p-wedding", "person", "date",
       "{ref} [is|are] getting married in {month}|{refs} wedding is in {month}|{ref} [is|are] tying the knot in {month}",
       "Getting married in {month}", "{month}|married,wedding,knot", "{name} is getting married in {month}",
       "when is {whos} wedding?", "forget about {refs} wedding"),
    _d("p-band", "person", "schedule",
       "{ref} [plays|play] in a jazz band on weekends|{ref} [gigs|gig] with [her|his|their] jazz band most weekends|on "
       "weekends {ref} [plays|play] with a jazz band",
       "Plays in a jazz band on weekends", "jazz band|weekend", "{name} plays in a jazz band on weekends",
       "what does {who} do on weekends?", "forget the band thing about {ref}"),
    _d("p-phd", "person", "life",
       "{ref} [is|are] doing a PhD in {x}|{ref} [is|are] halfway through a PhD in {x}|{ref} started a PhD in {x} this "
       "year",
       "Doing a PhD in {x}", "{x}|phd", "{name} is doing a PhD in {x}",
       "what is {who} doing a PhD in?", "forget {refs} PhD",
       "chemistry|linguistics|history|neuroscience|economics|astrophysics"),
    _d("p-lessons", "person", "schedule",
       "{ref} just started {x} lessons|{ref} [has|have] {x} lessons every week now|{ref} signed up for {x} lessons",
       "Takes {x} lessons", "{x}|lesson", "{name} takes {x} lessons",
       "what lessons is {who} taking?", "forget about {refs} lessons", "piano|swimming|driving|tango|singing|boxing"),
    _d("p-night-shifts", "person", "schedule",
       "{ref} [works|work] night shifts|{ref} [is|are] on night shifts this month|{ref} only [does|do] night shifts now",
       "Works night shifts", "night shift", "{name} works night shifts",
       "what shifts does {who} work?", "forget {refs} shifts"),
    _d("p-saving-car", "person", "plan",
       "{ref} [is|are] saving up for a car|{ref} [wants|want] to buy a car, saving every penny|{ref} [is|are] putting "
       "money aside for a car",
       "Saving up for a car", "car|sav,money", "{name} is saving up for a car",
       "what is {who} saving for?", "forget that {ref} [is|are] saving for a car"),
    _d("p-abroad", "person", "plan",
       "{ref} [is|are] thinking about moving abroad|{ref} might move abroad next year|{ref} [wants|want] to live abroad "
       "for a while",
       "Thinking about moving abroad", "abroad", "{name} is thinking about moving abroad",
       forget="forget that {ref} might move abroad"),
    _d("p-vinyl", "person", "preference",
       "{ref} [collects|collect] vinyl records|{ref} [has|have] a huge vinyl collection|{ref} [is|are] obsessed with "
       "collecting vinyl",
       "Collects vinyl records", "vinyl", "{name} collects vinyl records",
       "what does {who} collect?", "forget the vinyl thing about {ref}"),
    _d("p-office", "person", "opinion",
       "{ref} [thinks|think] the new office is way too far away|{ref} [hates|hate] the new office, it's too far|{ref} "
       "[complains|complain] that the new office is too far",
       "Finds the new office too far away", "office|far", "{name} finds the new office too far away",
       forget="forget what I said about {refs} office"),
    _d("p-surgery", "person", "date",
       "{ref} [has|have] surgery on {month} {day}|{refs} operation is on {month} {day}|{ref} [is|are] having an "
       "operation on {month} {day}",
       "Surgery scheduled for {month} {day}", "{month}|{day}|surgery,operation", "{name} has surgery on {month} {day}",
       "when is {whos} surgery?", "forget about {refs} surgery"),
    _d("p-learning", "person", "life",
       "{ref} [is|are] learning {x}|{ref} started learning {x} for work|{ref} [practises|practise] {x} every evening, "
       "learning fast",
       "Learning {x}", "{x}|learn", "{name} is learning {x}",
       "what is {who} learning?", "forget that {ref} [is|are] learning {x}",
       "Korean|Portuguese|Japanese|sign language|Arabic|to code"),
    # pets
    _d("pet-thunder", "pet", "health",
       "{pet} is terrified of thunderstorms|{pet} hides under the bed whenever there's a thunderstorm|thunder freaks "
       "{pet} out completely",
       "Scared of thunderstorms", "thunder", "{pet} is scared of thunderstorms",
       "what is {pet} scared of?", "forget the thunderstorm thing about {pet}"),
    _d("pet-thyroid", "pet", "health",
       "{pet} takes thyroid pills every morning|{pet} is on thyroid medication now|the vet put {pet} on thyroid tablets",
       "Takes thyroid medication", "thyroid", "{pet} takes thyroid medication",
       "what medication is {pet} on?", "forget {pet}'s medication", species="dog cat"),
    _d("pet-age", "pet", "life",
       "{pet} just turned {x}|{pet} had a birthday, {x} years old now|{pet} is {x} now, time flies",
       "{x} years old", "{x}", "{pet} is {x}",
       "how old is {pet}?", "forget {pet}'s age", "two|three|four|five|seven|twelve"),
    _d("pet-wet-food", "pet", "preference",
       "{pet} only eats wet food|{pet} refuses dry food, wet food only|{pet} is fussy, will only eat wet food",
       "Only eats wet food", "wet food", "{pet} only eats wet food",
       "what does {pet} eat?", "forget the food thing about {pet}", species="dog cat"),
    _d("pet-vet", "pet", "date",
       "{pet} has a vet appointment on {weekday}|{pet} is going to the vet on {weekday}|vet visit for {pet} on {weekday}",
       "Vet appointment on {weekday}", "{weekday}|vet", "{pet} has a vet appointment on {weekday}",
       "when is {pet}'s vet appointment?", "forget {pet}'s vet appointment"),
    _d("pet-squirrels", "pet", "preference",
       "{pet} is obsessed with chasing squirrels|{pet} goes nuts for squirrels in the park|{pet} lives to chase squirrels",
       "Obsessed with chasing squirrels", "squirrel", "{pet} loves chasing squirrels",
       "what does {pet} love chasing?", "forget the squirrel thing", species="dog"),
    _d("pet-deaf", "pet", "health",
       "{pet} is deaf in one ear|{pet} can't hear on one side, the vet says deaf in one ear|{pet} went deaf in one ear "
       "last year",
       "Deaf in one ear", "deaf", "{pet} is deaf in one ear", forget="forget that {pet} is deaf in one ear"),
    _d("pet-overweight", "pet", "health",
       "{pet} is on a diet, the vet says overweight|{pet} got a bit overweight, so smaller portions now|{pet} needs to "
       "lose weight, overweight apparently",
       "Overweight, on a diet", "overweight", "{pet} is overweight and on a diet",
       forget="forget the weight thing about {pet}"),
    _d("pet-hoover", "pet", "preference",
       "{pet} hates the hoover|{pet} runs away from the vacuum cleaner|{pet} attacks the vacuum every time",
       "Hates the vacuum cleaner", "vacuum,hoover", "{pet} hates the vacuum cleaner",
       "what does {pet} hate?", "forget the vacuum thing", species="dog cat rabbit"),
    _d("pet-walks", "pet", "schedule",
       "{pet} needs two walks a day|{pet} gets walked twice a day|{pet} has to go out twice a day, morning and evening",
       "Needs two walks a day", "two,twice|walk,out", "{pet} needs two walks a day",
       "how often does {pet} need walking?", "forget {pet}'s walk schedule", species="dog"),
    # projects
    _d("proj-deadline", "project", "date",
       "{project}'s deadline is the end of {month}|we have to ship {project} by the end of {month}|the {project} "
       "deadline is end of {month}",
       "Deadline is the end of {month}", "{month}|deadline,ship", "the {project} deadline is the end of {month}",
       "when is the {project} deadline?", "forget the {project} deadline"),
    _d("proj-language", "project", "life",
       "{project} is written in {x}|we're building {project} in {x}|the {project} codebase is all {x}",
       "Written in {x}", "{x}", "{project} is written in {x}",
       "what language is {project} written in?", "forget what {project} is written in",
       "Rust|Python|TypeScript|Kotlin|Elixir|Java|Swift"),
    _d("proj-team", "project", "life",
       "{project} has a team of {x} people|{x} people work on {project}|{project} is a small team, just {x} people",
       "Team of {x} people", "{x}|team,people", "{project} has a team of {x} people",
       "how big is the {project} team?", "forget the {project} team size", "three|five|eight|twelve"),
    _d("proj-behind", "project", "life",
       "{project} is behind schedule|{project} is running late, behind schedule again|we're way behind schedule on "
       "{project}",
       "Behind schedule", "behind", "{project} is behind schedule", forget="forget that {project} is behind"),
    _d("proj-grant", "project", "date",
       "{project}'s funding runs out in {month}|the grant for {project} ends in {month}|{project} is funded until {month}",
       "Funding runs out in {month}", "{month}|fund,grant", "{project}'s funding runs out in {month}",
       "when does the {project} funding run out?", "forget the {project} funding date"),
    _d("proj-demo", "project", "date",
       "we demo {project} to the board on {weekday}|the {project} demo is on {weekday}|{weekday} is the big {project} "
       "demo",
       "Demo on {weekday}", "{weekday}|demo", "the {project} demo is on {weekday}",
       "when is the {project} demo?", "forget the {project} demo"),
    _d("proj-launch", "project", "date",
       "{project} launches in {month}|we launch {project} in {month}|{project} goes live in {month}",
       "Launches in {month}", "{month}|launch,live", "{project} launches in {month}",
       "when does {project} launch?", "forget the {project} launch date"),
]
DETAIL_BY_KEY: dict[str, Detail] = {d.key: d for d in DETAILS}
# wrapped around a detail's `forget` ("forget my climbing night")
FORGET_DETAIL: list[str] = ["please {f}", "can you {f}?", "{f}, please", "{f}, I'd rather you didn't keep it",
                            "actually, {f}", "hey, {f}"]


# --- facts buried in requests ----------------------------------------------------------------
# A request for help that carries a fact: the fact is stored, the request answered. Specific
# requests state a fact of one kind ({ref}, slots as in STATE); generic ones wrap any clause.
BURIED: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("diet", "person"): [
        ("can you help me plan dinner? {ref} [is|are] {diet} now", "Sure: a vegetable curry with rice is easy to adapt."),
        ("{ref} [is|are] coming over and [she's|he's|they're] {diet}, what should I cook?",
         "A big tray of roast vegetables with a grain salad works well."),
    ],
    ("allergy", "person"): [
        ("I'm cooking for {ref} tonight and [she's|he's|they're] allergic to {allergy}, any ideas?",
         "A simple roast chicken or a vegetable risotto is easy to keep free of it; check every label."),
        ("what snacks can I bring to {refs} party? [she's|he's|they're] allergic to {allergy}",
         "Fruit skewers, popcorn and veggie sticks with hummus, after checking the labels."),
    ],
    ("birthday", "person"): [
        ("{refs} birthday is on {birthday}, can you suggest a gift?",
         "A nice book or an experience, like a cooking class, usually goes down well."),
        ("can you write a short birthday message? it's for {ref}, [her|his|their] birthday is {birthday}",
         "Sure: \"Happy birthday! Wishing you a wonderful year ahead.\""),
    ],
    ("birthday", "user"): [
        ("my birthday's on {birthday} and I want to throw a small party, any ideas?",
         "A picnic or a potluck dinner at home is easy and fun."),
    ],
    ("lives_in", "person"): [
        ("{ref} just moved to {city}, can you help me write a housewarming card?",
         "Sure: \"Congratulations on the new place! Wishing you many happy days there.\""),
        ("I'm visiting {ref} next month, [she|he|they] [lives|live] in {city} now. what should I pack?",
         "Layers, comfortable shoes, a rain jacket and a charger."),
    ],
    ("works_at", "person"): [
        ("{ref} just started at {org}, what's a nice way to congratulate [her|him|them]?",
         "A short message and a coffee or lunch together is a nice touch."),
    ],
    ("role", "user"): [
        ("I'm a {role}, can you help me write a short bio for LinkedIn?",
         "Sure: lead with your experience, two strengths and one result you're proud of."),
    ],
    ("hobby", "user"): [
        ("I've been getting into {hobby}, any tips for a beginner?", "Start small, go regularly, and find a group to learn with."),
    ],
    ("pet", "user"): [
        ("I just adopted a {species} called {pet}, what should I buy first?",
         "A bed, food and water bowls, a few toys, and book a vet check-up."),
    ],
    ("condition", "user"): [
        ("I have {condition}, any tips for a long flight?",
         "Stay hydrated, move around every hour and keep any medication in your hand luggage."),
    ],
    ("diet", "user"): [
        ("I'm {diet}, what can I cook this week?", "Lentil soup, a veggie stir-fry and a big bean salad are easy wins."),
    ],
    ("person", "user"): [
        ("can you help me write a birthday message for my {rw} {name}?",
         "Sure: \"Happy birthday! Hope your day is as wonderful as you are.\""),
        ("what's a good gift for my {rw} {name}? [she|he|they] [likes|like] cooking",
         "A good chef's knife or a nice spice set."),
    ],
}
REQUESTS: list[tuple[str, str]] = [
    ("can you suggest a quick dinner for tonight?", "How about a one-pan pasta with whatever vegetables you have?"),
    ("could you help me write a short email to my landlord about a leaky tap?",
     "Sure: \"Hi, the kitchen tap has started leaking. Could someone take a look this week? Thanks!\""),
    ("what's a good stretch after a long run?", "A standing quad stretch: hold each side for 30 seconds."),
    ("any tips for staying focused when working from home?", "Keep set hours, a separate work spot and short breaks."),
    ("how long does it take to hard-boil an egg?", "About 10 minutes in boiling water."),
    ("can you give me a packing list for a weekend trip?", "Clothes for two days, toiletries, chargers, ID and a water bottle."),
    ("what's a polite way to say no to extra work?", "\"I'd like to help, but I can't take this on without dropping something else.\""),
    ("remind me how to convert miles to km?", "Multiply by 1.609."),
    ("can you recommend a podcast for a long drive?", "\"99% Invisible\" is a good one for a drive."),
    ("help me come up with a name for a group chat?", "How about \"The Usual Suspects\"?"),
    ("what's a good way to learn new vocabulary?", "Short daily sessions with flashcards and spaced repetition."),
    ("how do I get coffee stains out of a shirt?", "Rinse with cold water, then dab with a little dish soap before washing."),
    ("what's a good board game for four people?", "Ticket to Ride is easy to learn and fun with four."),
    ("quick one: what's 18% of 250?", "45."),
    ("how do I politely remind someone they owe me money?",
     "\"Hey, just a friendly reminder about the money from last week, no rush, but let me know.\""),
    ("can you explain compound interest simply?", "You earn interest on your interest, so savings grow faster over time."),
    ("what's a good houseplant that's hard to kill?", "A snake plant or a pothos: both forgive missed waterings."),
    ("any ideas for a rainy Sunday?", "A long brunch, a film marathon or a new recipe."),
    ("how many cups are in a litre?", "About 4.2 US cups."),
    ("can you make my to-do list sound less scary? it's just laundry, emails and groceries",
     "Three small wins today: laundry, inbox, groceries."),
]
# how a generic request and a fact clause go together in one message
BURY_FORMS: list[str] = ["{request} btw {clause}", "{request} oh, and {clause}", "{clause}. anyway, {request}",
                         "{clause}. unrelated, but {request}", "{request} (also, {clause})", "{clause}. oh and {request}",
                         "{request} also {clause} lol"]
REQUEST_CLOSERS: list[str] = ["", "", "", " haha", " :)", " 🙏", " thanks!"]
BURIED_ACKS: list[str] = ["Also noted: {said}.", "And I'll remember that {said}.", "Noted, too: {said}.",
                          "I've also saved that {said}."]

# --- the way people really write ---------------------------------------------------------------
# chatter around the facts of a long message
CHATTER: list[str] = [
    "work has been crazy this week", "long week lol", "anyway", "so much going on lately", "sorry, this is a lot",
    "ok where was I", "not much else is new", "it's been a while", "I'm so tired today", "the weather is awful here",
    "random, I know", "just catching you up", "life update incoming", "I keep forgetting to tell you things",
    "let me think what else", "oh right", "ugh, mondays",
]
EMOJIS: list[str] = [" 😅", " 🙂", " 😂", " 🎉", " 🙏", " ❤️", " 👍", " 🐶", " ☕", " 😬"]
SLANG_OPENERS: list[str] = ["ngl ", "tbh ", "lol ", "omg ", "ok so ", "soooo ", "yo ", "heyyy ", "update: ", "k so "]
# more small talk and requests with nothing to store, some that sound personal but state no fact
# about the user's world (a hypothetical dog, a general question about bosses)
SMALL_TALK += [
    ("What's a good name for a golden retriever puppy?", "Sunny, Maple or Biscuit would all suit a golden."),
    ("How do I ask for a raise without it being awkward?",
     "Book a short meeting, bring two or three concrete results, and name the number you have in mind."),
    ("is it weird to move to a new city alone?", "Not at all, lots of people do it. Joining a club helps you meet people fast."),
    ("How do I stop a cat from scratching the sofa?", "Put a scratching post right next to it and reward the cat for using it."),
    ("whats the best way to keep basil alive", "Lots of light, water when the top of the soil is dry, and pinch off the flowers."),
    ("can you explain what a mortgage is in one sentence?", "A loan to buy a home, paid back with interest over many years."),
    ("Tell me something interesting about octopuses.", "They can taste with their arms."),
    ("how many hours of sleep do adults need?", "Most adults need seven to nine hours."),
    ("Is it better to rent or buy?", "It depends on how long you'll stay and on local prices; buying pays off over longer stays."),
    ("give me a 10 minute workout", "Two rounds of: 1 minute squats, 1 minute push-ups, 1 minute plank, 1 minute lunges, 1 minute rest."),
    ("what's the difference between a latte and a flat white?", "A flat white has less milk and a thinner layer of foam."),
    ("Translate 'good morning' into Spanish.", "Buenos días."),
    ("haha you're funny", "Glad I could make you smile!"),
    ("brb", "Sure, I'll be here."),
    ("ok thanks!!", "You're welcome!"),
    ("can you write a haiku about coffee?", "Dark cup in my hands, / steam curls into morning light, / the day can begin."),
    ("How do I politely leave a group chat?", "Post a short thank-you and say you're stepping back to keep your phone quiet."),
    ("what should I do if I can't sleep?", "Get up, do something calm in dim light, and go back to bed when you feel sleepy."),
    ("What's the tallest mountain in Africa?", "Kilimanjaro, at about 5,895 metres."),
    ("How do you make cold brew?", "Steep coarse coffee in cold water for 12 to 18 hours, then strain it."),
    ("any good icebreakers for a team meeting?", "\"Two truths and a lie\" or \"best thing you ate this week\" both work."),
    ("is 7am too early to text someone?", "For most people, yes; after 9am is safer unless it's urgent."),
    ("How do I unclog a drain without chemicals?", "Pour in baking soda, then vinegar, wait 15 minutes and flush with hot water."),
    ("What are some tips for a first job interview?", "Research the company, prepare three stories about your work, and ask them a question too."),
    ("I'm bored", "Want a quick idea? A short walk, a new playlist or a five-minute sketch."),
    ("why is the sky blue?", "Air scatters blue light more than red, so blue reaches your eyes from every direction."),
    ("can you proofread this: 'their going to the park tomorow'", "\"They're going to the park tomorrow.\""),
    ("What's a good weekly budget method?", "Try 50/30/20: needs, wants, savings."),
    ("how do I say no to a wedding invite nicely?",
     "\"Thank you so much for inviting me; sadly I can't make it, but I'll be celebrating you from afar.\""),
    ("Suggest a movie for a cozy night in.", "\"Paddington 2\" is warm, funny and great for a cozy night."),
    ("What's the plural of 'octopus'?", "Octopuses (octopi is common but less correct)."),
    ("honestly today was rough", "I'm sorry it was a rough day. Want to talk about it, or shall I distract you?"),
    ("How long do I cook rice?", "About 15 minutes covered on low heat, then 5 minutes resting."),
    ("what's a good gift for someone who has everything?", "An experience: a concert, a class or a nice dinner."),
    ("Is coffee bad for you?", "In moderation, up to about four cups a day, it's fine for most adults."),
    ("what's a fun fact about cats?", "Cats sleep around 12 to 16 hours a day."),
    ("Explain blockchain like I'm five.", "It's a notebook everyone shares, where pages can be added but never erased."),
    ("hey", "Hi! What can I do for you?"),
    ("nvm", "No problem!"),
    ("can you make a shopping list for pancakes?", "Flour, milk, eggs, butter, a little sugar and baking powder."),
]
