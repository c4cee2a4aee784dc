"""Deterministic synthetic interview transcripts with labelled identifiers.

Two uses: measuring an anonymiser's recall and precision on text whose identifiers sit at
known offsets (:func:`generate_labelled`), and throughput or scale runs on realistic volumes
(:func:`generate_corpus`, and the CLI, which writes ``.txt`` files plus a
``participants.csv`` manifest).

The transcripts imitate a paired study of support in daily living: each pair is a service user
interview and an interview with the support worker the user named, in one municipality; a
worker is sometimes named by two users, so the same worker's name recurs across documents,
as do the municipality's staff, doctors, places and organisations. Turns use the usual
labels (``Interviewer:``, ``I:``, ``IP:``, ``P03:``), with hesitations, annotations such as
``(laughs)`` and ``[ohörbart]``, back-channel turns and digressions. Every sentence here was
written for this file; names, places and organisations come from the lists below, not from
qualpipe's gazetteers.

Everything is a pure function of the seed (string seeds of :class:`random.Random` hash with
SHA-512, so results do not depend on ``PYTHONHASHSEED``); each document has its own generator,
so document *i* is the same however many documents are requested.

    python benchmarks/corpus.py --out /tmp/corpus --mb 100 --seed 1
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import functools
import importlib
import json
import math
import random
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENTITY_TYPES = (
    "PERSON",
    "PLACE",
    "ORG",
    "ADDRESS",
    "POSTCODE",
    "DATE",
    "PHONE",
    "EMAIL",
    "ID",
    "URL",
)
LANGUAGES = ("en", "sv", "mixed")

Span = tuple[int, int, str, str]  # start, end (exclusive), entity type, text[start:end]


@dataclass
class LabelledDoc:
    """A transcript and its identifiers: ``text[start:end] == value`` for every span.

    ``entity_keys[i]`` names the real-world entity behind ``spans[i]`` (``person:W003``,
    ``place:Gävle``), the same across documents, for checking consistent pseudonyms.
    ``meta`` holds the participant's attributes (the manifest columns).
    """

    doc_id: str
    text: str
    language: str
    spans: list[Span]
    entity_keys: list[str] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- word lists

NAMES = {
    "sv": {
        "woman": [
            "Anna", "Eva", "Karin", "Kerstin", "Ingrid", "Birgitta", "Ulla", "Stina", "Sara",
            "Elin", "Linnéa", "Maja", "Åsa", "Märta", "Signe", "Ylva", "Tove", "Britt", "Amina",
            "Leyla", "Dragana", "Yasmin", "Siv", "Gunnel",
        ],
        "man": [
            "Lars", "Per", "Hans", "Bo", "Björn", "Göran", "Mikael", "Johan", "Anders", "Erik",
            "Nils", "Olle", "Sven", "Åke", "Jörgen", "Torbjörn", "Emil", "Hampus", "Kalle",
            "Viktor", "Ahmed", "Hassan", "Mehmet", "Dario", "Leif",
        ],
        "surname": [
            "Andersson", "Lindqvist", "Bergström", "Sjöberg", "Åkesson", "Öberg", "Nordin",
            "Holmgren", "Lundgren", "Ek", "Blom", "Hedlund", "Sandberg", "Wikström", "Forsberg",
            "Engström", "Dahl", "Nyström", "Järvinen", "Yilmaz", "Haddad", "Kovačević", "Nguyen",
            "Söderlund", "Strand", "Hägg",
        ],
    },
    "en": {
        "woman": [
            "Sarah", "Emma", "Claire", "Rachel", "Gemma", "Siobhan", "Rose", "Grace", "Faith",
            "Hope", "Priya", "Aisha", "Joanne", "Kerry", "Dawn", "Bernadette", "Chloe", "Niamh",
            "Tracey", "Yvonne",
        ],
        "man": [
            "James", "Tom", "Mark", "Will", "Gareth", "Rhys", "Callum", "Darren", "Lee", "Wayne",
            "Dean", "Kwame", "Tariq", "Raj", "Connor", "Liam", "Stuart", "Graham", "Marcus",
            "Declan",
        ],
        "surname": [
            "Smith", "Jones", "Taylor", "Brown", "Williams", "Evans", "Thomas", "Roberts", "Walker",
            "Wright", "Patel", "Khan", "Begum", "O'Neill", "McKenzie", "Okafor", "Hughes", "Hall",
            "Green", "Marsh", "Bishop", "Baker", "Fairbairn", "Nwosu", "Kowalski",
        ],
    },
}  # fmt: skip

MUNICIPALITIES = {
    "sv": [
        "Gävle", "Sandviken", "Hofors", "Söderhamn", "Bollnäs", "Ockelbo", "Uppsala",
        "Örebro", "Västerås", "Falun", "Borlänge", "Norrköping",
    ],
    "en": [
        "Leeds", "Bradford", "Salford", "Stockport", "Sheffield", "Rotherham", "Wakefield",
        "Harrogate", "Hackney", "Lewisham", "Croydon", "Huddersfield",
    ],
}  # fmt: skip
TOWNS = {
    "sv": [
        "Stockholm", "Göteborg", "Malmö", "Umeå", "Luleå", "Sundsvall", "Hudiksvall",
        "Östersund", "Karlstad", "Jönköping", "Växjö", "Kiruna", "Tierp", "Älvkarleby",
        "Finland", "Bosnien", "Irak", "Somalia", "Polen", "Chile", "Eritrea",
    ],
    "en": [
        "London", "Manchester", "Liverpool", "Newcastle", "Glasgow", "Cardiff", "Blackpool",
        "Hull", "York", "Bristol", "Doncaster", "Scarborough", "Skegness", "Birmingham",
        "Ireland", "Jamaica", "Poland", "Pakistan", "Nigeria", "Scotland", "Wales",
    ],
}  # fmt: skip
AREAS = {
    "sv": [
        "Stadsträdgården", "Rådhustorget", "Brynäs", "Sätra", "Andersberg", "Bomhus",
        "Valbo", "Strömsbro", "Hemlingby", "Engeltofta", "Stortorget", "Kvarnparken",
        "Norrtull", "Storsjön",
    ],
    "en": [
        "Roundhay Park", "Chapeltown", "Harehills", "Seacroft", "Moss Side", "Levenshulme",
        "Peckham", "Meanwood", "Kirkstall", "Heaton Park", "Victoria Park", "Meadowhall",
        "Clissold Park", "Hillsborough",
    ],
}  # fmt: skip
ORGS = {
    "sv": [
        "Försäkringskassan", "Arbetsförmedlingen", "Fontänhuset", "Hela Människan", "RSMH",
        "Stadsmissionen", "Migrationsverket", "Kronofogden", "Region Gävleborg",
        "Hyresgästföreningen", "Röda Korset", "Socialtjänsten i {m}", "{m} kommun",
        "Psykiatriska öppenvården i {m}", "Boendestödet i {m}", "Träffpunkten i {m}",
    ],
    "en": [
        "DWP", "Jobcentre Plus", "Citizens Advice", "Rethink", "Samaritans", "Shelter",
        "Turning Point", "Age UK", "Salvation Army", "Women's Aid", "StepChange",
        "{m} Council", "{m} Mind", "{m} Community Mental Health Team",
        "{m} Recovery College",
    ],
}  # fmt: skip
HOSPITALS = {
    "sv": [
        "Karolinska", "Södersjukhuset", "Gävle sjukhus", "Akademiska", "Danderyds sjukhus",
        "Sahlgrenska", "Universitetssjukhuset Örebro", "Hudiksvalls sjukhus",
        "Beroendecentrum Stockholm", "Psykiatriska akutmottagningen i {m}",
    ],
    "en": [
        "St Mary's Hospital", "Leeds General Infirmary", "Becklin Centre",
        "Royal Oldham Hospital", "Maudsley", "Homerton", "Northern General", "Pinderfields",
        "St James's", "{m} Royal Infirmary",
    ],
}  # fmt: skip
SHOPS = {
    "sv": [
        "Ica Maxi", "Coop", "Willys", "Lidl", "Systembolaget", "Apoteket Hjärtat", "Åhléns",
        "Clas Ohlson", "Hemköp", "Kronans Apotek",
    ],
    "en": [
        "Tesco", "Asda", "Morrisons", "Boots", "Aldi", "Greggs", "Co-op", "Lidl",
        "Poundland", "Sainsbury's",
    ],
}  # fmt: skip
STREETS = {
    "sv": [
        "Storgatan", "Kungsgatan", "Drottninggatan", "Nygatan", "Hälsingegatan",
        "Valbovägen", "Björkvägen", "Tallvägen", "Granvägen", "Skolgatan", "Järnvägsgatan",
        "Lingonstigen", "Ängsvägen", "Södra Kungsgatan", "Furuvägen", "Kaserngatan",
    ],
    "en": [
        "Station Road", "Victoria Street", "Albion Terrace", "Harehills Lane", "Mill Close",
        "Church Lane", "Park Avenue", "Chapel Street", "Oak Grove", "Beechwood Crescent",
        "Queen's Road", "Cavendish Mews", "Hollin Drive", "Market Street",
    ],
}  # fmt: skip
URLS = {
    "sv": [
        "www.1177.se", "https://www.{slug}.se/omsorg", "www.fontanhuset.se",
        "facebook.com/groups/{slug}stod", "https://www.forsakringskassan.se",
        "www.rsmh.se/{slug}",
    ],
    "en": [
        "www.mind.org.uk", "https://www.nhs.uk/mental-health", "www.{slug}.gov.uk",
        "www.{slug}mind.org.uk", "facebook.com/groups/{slug}peersupport",
        "https://www.citizensadvice.org.uk",
    ],
}  # fmt: skip
EMAIL_DOMAINS = {
    "sv": ["gmail.com", "hotmail.se", "telia.com", "live.se", "outlook.com", "{slug}.se"],
    "en": ["gmail.com", "hotmail.co.uk", "outlook.com", "btinternet.com", "nhs.net"],
}
RELATIVES = {
    "sv": {"woman": ["mamma", "syster", "dotter", "mormor", "kusin"],
           "man": ["pappa", "bror", "son", "morbror", "kusin"], "any": ["sambo", "kompis"]},
    "en": {"woman": ["mum", "sister", "daughter", "nan", "cousin"],
           "man": ["dad", "brother", "son", "uncle", "cousin"], "any": ["partner", "mate"]},
}  # fmt: skip
MONTHS = {
    "sv": [
        "januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti", "september",
        "oktober", "november", "december",
    ],
    "en": [
        "January", "February", "March", "April", "May", "June", "July", "August", "September",
        "October", "November", "December",
    ],
}  # fmt: skip
HESITATIONS = {
    "sv": ["eh", "öh", "liksom", "alltså", "typ", "asså", "hm", "ja men"],
    "en": ["um", "uh", "er", "erm", "you know", "I mean", "like"],
}
ANNOTATIONS = {
    "sv": ["(skratt)", "[ohörbart]", "(paus)", "(suckar)", "[otydligt]", "(skrattar)",
           "(lång paus)", "[ohörbart 2 sek]"],
    "en": ["(laughs)", "[inaudible]", "(pause)", "[crosstalk]", "(sighs)", "[unclear]",
           "(long pause)", "[inaudible 2 sec]"],
}  # fmt: skip
LABEL_STYLES = {
    "sv": [("Intervjuare:", "IP:"), ("I:", "IP:"), ("I:", "P{n:02d}:"),
           ("Intervjuaren:", "Informant:"), ("I:", "{pid}:")],
    "en": [("Interviewer:", "Participant:"), ("I:", "P:"), ("I:", "P{n:02d}:"),
           ("Interviewer:", "{pid}:"), ("INT:", "RESP:")],
}  # fmt: skip
ROLES = {"user": "Service user", "worker": "Support worker"}  # manifest values
ROLE_WORDS = {
    "sv": {"user": "brukare", "worker": "boendestödjare"},
    "en": {"user": "service user", "worker": "support worker"},
}
PRONOUNS = {  # subject, object
    "sv": {"woman": ("hon", "henne"), "man": ("han", "honom")},
    "en": {"woman": ("she", "her"), "man": ("he", "him")},
}
AGE_BANDS = {
    "user": ["25-34", "35-44", "45-54", "55-64", "65-74"],
    "worker": ["25-34", "35-44", "45-54", "55-64"],
}

# --------------------------------------------------------------------------- templates
# {X} is a slot, {X_v} a slot variant: W (the support worker), U (the service user), S (the
# speaker), R (a relative of the user; R_role is the relation word), C (a colleague or another
# member of staff), DOC (a doctor's surname), HOME (the municipality), PLACE, AREA, ORG, HOSP,
# SHOP, DATE (DATE_w: written out, DATE_m: month and year), ADDR, POST, PHONE, EMAIL, ID,
# URL, H (a hesitation).
# Person variants: _full (first name and surname), _gen (possessive; suffix outside the span),
# _pron, _Pron, _obj (a pronoun that agrees with the person's gender; not an identifier).

TEMPLATES: dict[str, dict[str, list[str]]] = {
    "en": {
        "user_id": [
            "{W} comes round on Tuesdays and we do the big shop together at {SHOP}.",
            "Before {W} I had someone else, but it never really clicked between us.",
            "{W_gen} the first one who actually listened, rather than ticking boxes.",
            "My {R_role} {R} keeps saying I should move nearer {PLACE}, but I like it here.",
            "We got the bus into {HOME} and {W_pron} waited with me at the chemist, {H}, for"
            " nearly forty minutes.",
            "I had an appointment with Dr {DOC} on {DATE_w} and {W} came along with me.",
            "I live at {ADDR}, {POST}, so it's a bit of a trek to the shops.",
            "If anything happens they ring me on {PHONE}, that's my mobile.",
            "I was in {HOSP} for about six weeks after all that.",
            "{W} turned round and said, '{S}, you don't have to do it all today.'",
            "The letter from {ORG} came on {DATE} and I couldn't open it for a week.",
            "Sometimes we just sit in {AREA} and feed the ducks and talk about nothing.",
            "My email is {EMAIL} if you want to send the transcript over.",
            "They kept asking for my NHS number, it's {ID}, I know it off by heart now.",
            "{W_full} from the support team, {W_pron}'s the one I'd put forward.",
            "I used to go to the drop-in run by {ORG} but it shut last year.",
            "{R} rang me on {DATE_w} and we had a proper row about money.",
            "The care coordinator, {C}, changed three times in one year.",
            "There's a group on {URL}, I read it when I can't sleep.",
            "We went swimming near {AREA} once, first time in years.",
            "I grew up in {PLACE} and came here when my {R_role} got poorly.",
            "{W} can tell I'm having a bad day before I've said a word.",
            "Me and {R} aren't really speaking at the moment.",
            "I'd been on the waiting list at {HOSP} since {DATE}.",
            "You can check it on {URL}, that's where they put the timetable.",
            "{W_gen} been helping me fill in the forms for {ORG}.",
            "They moved me from {PLACE} to the flat on {ADDR} after the fire.",
            "When {W} was off sick they sent {C}, and honestly it wasn't the same.",
            "My {R_role}'s number is {PHONE}, they've got it on file.",
            "Dr {DOC} wanted to change my tablets again, {H}, third time this year.",
            "On {DATE_w} we wrote a plan, on paper, for what happens if I stop answering the door.",
            "I said to {W}, can we just go for a walk instead, and {W_pron} said yes.",
            "{R_gen} little boy drew me a picture and I've still got it on the fridge.",
            "It all started in {DATE_m}, just after I'd moved.",
            "We've had more or less the same plan since {DATE_m}.",
            "I rang {ORG} on {PHONE} and was on hold for an hour.",
        ],
        "user": [
            "It's the little things, like someone noticing I'd had my hair cut.",
            "Some weeks I can't face the post, so we open it together.",
            "{W_Pron} doesn't rush me, that's the main thing for me.",
            "We'd planned to clean the kitchen but I wasn't up to it, so we went for a coffee"
            " instead.",
            "I don't want someone to do it for me, I want someone to do it with me.",
            "Talking about the telly, the weather, normal stuff, that helps more than you'd think.",
            "The plan says one thing but real life says another.",
            "I used to dread the phone, I still do really, but I can ring the surgery now.",
            "If I'm honest I didn't trust any of them at first.",
            "The shopping is the hard part, all the people and the noise.",
            "There are days when I don't get dressed at all.",
            "It felt like someone was on my side for once.",
            "We write a list on a Sunday and stick it on the fridge.",
            "They're not allowed to drive us anywhere any more, it's a rule, so it's buses now.",
            "You can tell when someone's just doing a job and when they actually care.",
            "I've learned to cook a few things, nothing fancy, pasta and that.",
            "Sometimes {W_pron} just sits with me and we don't say much, and that's fine.",
            "The appointments are shorter now, twenty minutes and you're out the door.",
            "I felt stuck for years, like nothing was ever going to move.",
            "Will it last? I don't know, I hope so.",
            "Money's always been a worry, the bills just pile up.",
            "At Christmas it gets worse, everyone else seems to have somewhere to be.",
            "I'm more myself now than I was a couple of years ago.",
            "We laugh a lot, actually, which surprised me.",
            "It's not therapy, it's just being with someone who gets it.",
            "The forms are a nightmare, page after page of the same questions.",
            "I may be wrong but I think they were short-staffed the whole time.",
            "Getting out of the flat is half the battle, {H}, most days.",
            "I'd rather be told straight than have people tiptoe round me.",
            "Mark my words, if they cut the hours again people will end up back in hospital.",
        ],
        "worker_id": [
            "With {U} it's mostly about getting out of the house, building it up slowly.",
            "I've been supporting {U} since {DATE_w}, so a good while now.",
            "{U_gen} sister lives over in {PLACE}, and she's fairly involved.",
            "My manager, {C_full}, is very flexible about how we use the hours.",
            "We had a review at {ORG} and the whole plan was rewritten.",
            "Sometimes {U} rings the office on {PHONE} just to check I'm still coming.",
            "The referral came through from {HOSP} on {DATE}.",
            "I told {U}, we don't have to do the list, we can go down to {AREA} and see how"
            " you feel.",
            "{C} covers for me when I'm on leave, and {U} finds that hard.",
            "It's {ORG} who decide on the hours, not us.",
            "{U} and I sat in the car park at {SHOP} for half an hour before going in.",
            "You can email me at {EMAIL}, I check it most evenings.",
            "We found a walking group on {URL} and {U} went twice.",
            "I cover {HOME} and the villages round it, it's a lot of miles.",
            "{U} had a crisis on {DATE_w} and we ended up at {HOSP} most of the day.",
            "I rang {R} on {PHONE} to let {R_obj} know how things were going.",
            "{U_gen} flat is on {ADDR}, up three flights of stairs, no lift.",
            "When {C} started, {U} wouldn't open the door to {C_obj} for a month.",
            "We practised the bus route to {PLACE} until {U} felt fine doing it alone.",
            "Dr {DOC} phoned me about {U_gen} medication, which isn't really my role.",
            "The team meets every Thursday at {ORG} to go over the caseload.",
        ],
        "worker": [
            "You have to be prepared to throw the plan away.",
            "A lot of the work happens at the bus stop, not in an office.",
            "I try to follow their lead, not mine.",
            "We're not supposed to use our own cars now, which makes rural visits tricky.",
            "Some of the best conversations happen while we're washing up.",
            "The paperwork takes longer than the visit sometimes.",
            "Trust takes months to build and one bad week to lose.",
            "I don't see myself as the expert on their life, they are.",
            "It's about being reliable, turning up when you said you would.",
            "If someone cancels three times I don't close the case, I knock on the door.",
            "We get twenty minutes of supervision a month, if that.",
            "Being there matters more than what we actually do.",
            "Some days the plan is just a cup of tea and a chat, and that's enough.",
            "You learn to read the room before you've taken your coat off.",
            "There's a tension between what's written down and what the person wants that day.",
            "I'm not a friend, but I'm not a stranger either, it's somewhere in between.",
            "Small things, remembering a birthday or a favourite biscuit, matter a lot.",
            "We used to have an hour per visit, now it's forty-five minutes at most.",
            "I write my notes straight afterwards or I forget half of it.",
            "Improvising is most of the job, honestly.",
        ],
        "question": [
            "Can you tell me about a normal week?",
            "Could you give me an example?",
            "What happens when things don't go to plan?",
            "Is there anything you'd change about the support?",
            "What do you talk about, usually?",
            "Will you tell me a bit more about that?",
            "What's the most important thing for you?",
            "How would you describe the relationship?",
            "And how did that feel?",
            "Mm. And then what happened?",
            "Okay. What did you do next?",
            "Is there anything else you'd like to add?",
        ],
        "question_user": [
            "What does {W} help you with?",
            "How did you first meet {W}?",
            "You mentioned {PLACE} earlier, what happened there?",
            "How long have you been in touch with {ORG}?",
        ],
        "question_worker": [
            "How do you plan the visits with {U}?",
            "What made the difference with {U}, do you think?",
            "Who else is involved, apart from {ORG}?",
        ],
        "digression": [
            "Sorry, the cat's trying to get on the table.",
            "Is it still recording? Right, good.",
            "Did you see the match on Saturday? Shocking.",
            "It's freezing in here, I keep meaning to sort the heating.",
            "My neighbour's got builders in, you might hear drilling.",
            "Anyway, where was I?",
            "Oh, that's my phone, just ignore it.",
            "Do you want another tea? No? Fair enough.",
        ],
        "back": ["Mm.", "Yeah.", "Right.", "Mm-hm.", "Okay.", "I see."],
        "back_again": [
            "Let's go back to what you were saying about the support.",
            "Coming back to the visits for a moment.",
        ],
        "open_q": ["Thanks for agreeing to talk to me. Shall we start?"],
        "open_a": ["Yeah, go on.", "Fine, yes.", "Okay, I'm a bit nervous but okay."],
        "close_q": ["That's everything from me. Thank you so much, that was really helpful."],
        "close_a": ["No problem.", "Thanks, it was nice to talk actually.", "You're welcome."],
        "header": ["Transcript, interview {pid} ({role}), recorded {DATE}, {HOME}"],
    },
    "sv": {
        "user_id": [
            "{W} kommer på tisdagarna och då storhandlar vi tillsammans på {SHOP}.",
            "Innan {W} hade jag en annan, men det klickade aldrig riktigt mellan oss.",
            "{W} är den första som verkligen lyssnar på mig, liksom.",
            "Min {R_role} {R} tjatar om att jag ska flytta närmare {PLACE}, men jag trivs här.",
            "Vi tog bussen in till {HOME} och {W_pron} väntade med mig på apoteket, {H}, i nästan"
            " fyrtio minuter.",
            "Jag hade en tid hos doktor {DOC} {DATE_w} och {W} följde med.",
            "Jag bor på {ADDR}, {POST} {HOME}, så det är en bit att gå till affären.",
            "Om något händer ringer de mig på {PHONE}, det är min mobil.",
            "Jag låg på {HOSP} i sex veckor efter allt det där.",
            "{W} sa till mig: {S}, du behöver inte göra allt i dag.",
            "Brevet från {ORG} kom {DATE} och jag kunde inte öppna det på en vecka.",
            "Ibland sitter vi bara i {AREA} och matar änderna och pratar om ingenting.",
            "Min mejl är {EMAIL} om du vill skicka utskriften.",
            "De frågade hela tiden efter mitt personnummer, {ID}, jag kan det utantill nu.",
            "{W_full} på boendestödet, det är {W_obj} jag skulle välja.",
            "Jag brukade gå till träffpunkten hos {ORG} men den har lagts ner.",
            "{R} ringde {DATE_w} och vi bråkade ordentligt om pengar.",
            "{W_gen} kollega {C} har också varit här några gånger.",
            "Det finns en grupp på {URL}, jag läser där när jag inte kan sova.",
            "Vi var och badade vid {AREA} en gång, första gången på flera år.",
            "Jag växte upp i {PLACE} och flyttade hit när min {R_role} blev sjuk.",
            "{W} märker när jag har en dålig dag innan jag ens har sagt något.",
            "Jag och {R} pratar inte så mycket med varandra just nu.",
            "Jag hade stått i kö till {HOSP} sedan {DATE}.",
            "{W_gen} sätt att prata gör att jag slappnar av.",
            "De flyttade mig från {PLACE} till lägenheten på {ADDR} efter branden.",
            "När {W} var sjukskriven skickade de {C}, och det var inte samma sak.",
            "Numret till min {R_role} är {PHONE}, det står i journalen.",
            "Doktor {DOC} ville ändra medicinen igen, {H}, tredje gången i år.",
            "{DATE_w} gjorde vi en plan, på papper, om vad som ska hända om jag slutar öppna"
            " dörren.",
            "Jag sa till {W}: kan vi inte bara gå en promenad i stället, och {W_pron} sa ja.",
            "{C_Pron} heter {C_full} och jobbar på {ORG}.",
            "Jag ringde {ORG} på {PHONE} och satt i telefonkö i en timme.",
            "{R_gen} lille kille ritade en teckning till mig, den sitter kvar på kylskåpet.",
            "Det började i {DATE_m}, precis efter att jag hade flyttat.",
            "Vi har haft ungefär samma plan sedan {DATE_m}.",
        ],
        "user": [
            "Det är de små sakerna, att någon märker att jag har klippt mig.",
            "Vissa veckor klarar jag inte att öppna posten, så vi gör det tillsammans.",
            "{W_Pron} stressar inte, det är det viktigaste för mig.",
            "Vi hade tänkt städa köket men jag orkade inte, så vi gick och fikade i stället.",
            "Jag vill inte att någon gör det åt mig, jag vill att vi gör det tillsammans.",
            "Vi pratar om tv, vädret, vanliga saker, och det hjälper mer än man tror.",
            "Planen säger en sak men verkligheten säger en annan.",
            "Förut hatade jag att ringa, men nu kan jag ringa vårdcentralen själv.",
            "Om jag ska vara ärlig litade jag inte på någon av dem i början.",
            "Att handla är det svåra, alla människor och allt ljud.",
            "Det finns dagar när jag inte ens klär på mig.",
            "Det kändes som att någon var på min sida för en gångs skull.",
            "Vi skriver en lista på söndagen och sätter upp den på kylskåpet.",
            "De får inte skjutsa oss i sina bilar längre, det är en regel, så det blir buss.",
            "Man märker när någon bara gör sitt jobb och när de faktiskt bryr sig.",
            "Jag har lärt mig laga lite mat, inget märkvärdigt, pasta och sånt.",
            "Ibland sitter {W_pron} bara här och vi säger inte så mycket, och det är okej.",
            "Besöken har blivit kortare, tjugo minuter och sen måste {W_pron} vidare.",
            "Jag kände mig fast i flera år, som att ingenting någonsin skulle hända.",
            "Hans bror hjälpte till med flytten, han är snäll.",
            "Pengarna har alltid varit ett bekymmer, räkningarna bara växer.",
            "Till jul blir det värre, alla andra verkar ha någonstans att vara.",
            "Jag är mer mig själv nu än för ett par år sedan.",
            "Vi skrattar mycket faktiskt, det hade jag inte trott.",
            "Det är inte terapi, det är bara att vara med någon som förstår.",
            "Blanketterna är en mardröm, sida efter sida med samma frågor.",
            "Jag vill bo kvar här, det är mitt hem.",
            "{W_Pron} kommer två gånger per vecka, ibland tre om det behövs.",
            "Att ta sig ut ur lägenheten är halva jobbet, {H}, de flesta dagar.",
            "Jag vill hellre att man säger som det är än att alla går på tå runt mig.",
        ],
        "worker_id": [
            "Med {U} handlar det mest om att komma ut, att bygga upp det långsamt.",
            "Jag har haft {U} sedan {DATE_w}, så det är ett bra tag nu.",
            "{U_gen} syster bor i {PLACE} och hon är ganska involverad.",
            "Min chef, {C_full}, är väldigt flexibel med hur vi använder tiden.",
            "Vi hade ett uppföljningsmöte på {ORG} och hela planen skrevs om.",
            "Ibland ringer {U} till kontoret på {PHONE} bara för att höra att jag kommer.",
            "Remissen kom från {HOSP} {DATE_w}.",
            "Jag sa till {U}: vi behöver inte följa listan, vi kan gå ner till {AREA} och se"
            " hur du mår.",
            "{C} täcker upp när jag är ledig, och det tycker {U} är jobbigt.",
            "Det är {ORG} som fattar beslut om insatsen, inte vi.",
            "{U} och jag satt på parkeringen utanför {SHOP} en halvtimme innan vi gick in.",
            "Du kan mejla mig på {EMAIL}, jag läser den de flesta kvällar.",
            "Vi hittade en promenadgrupp på {URL} och {U} har varit med två gånger.",
            "Jag har hela {HOME} och byarna runt omkring, det blir många mil.",
            "{U} fick en kris {DATE_w} och vi hamnade på {HOSP} större delen av dagen.",
            "Jag ringde {R} på {PHONE} för att berätta hur det gick.",
            "{U_gen} lägenhet ligger på {ADDR}, tre trappor upp utan hiss.",
            "När {C} började ville {U} inte öppna dörren för {C_obj} på en månad.",
            "Vi övade på bussresan till {PLACE} tills {U} klarade den själv.",
            "Doktor {DOC} ringde mig om {U_gen} medicin, fast det inte är min roll egentligen.",
            "Teamet träffas varje torsdag på {ORG} och går igenom ärendena.",
        ],
        "worker": [
            "Man måste vara beredd att slänga planen.",
            "Mycket av jobbet händer vid busshållplatsen, inte på ett kontor.",
            "Jag försöker följa deras tempo, inte mitt eget.",
            "Vi får inte använda våra egna bilar längre, vilket gör det svårt på landet.",
            "Några av de bästa samtalen blir när vi står och diskar.",
            "Dokumentationen tar ibland längre tid än själva besöket.",
            "Förtroende tar månader att bygga och en dålig vecka att förlora.",
            "Jag ser mig inte som expert på deras liv, det är de som är det.",
            "Det handlar om att vara pålitlig, att komma när man har sagt att man ska komma.",
            "Om någon ställer in tre gånger avslutar jag inte, jag knackar på dörren.",
            "Vi får tjugo minuters handledning i månaden, om ens det.",
            "Att finnas där betyder mer än vad vi faktiskt gör.",
            "Vissa dagar är planen bara en kopp kaffe och lite prat, och det räcker.",
            "Man lär sig känna av stämningen innan man ens har tagit av sig jackan.",
            "Det finns en spänning mellan det som står i planen och det personen vill just då.",
            "Jag är inte en vän, men inte en främling heller, det är någonstans mittemellan.",
            "Små saker, att minnas en födelsedag eller vilka kakor någon gillar, betyder mycket.",
            "Förut hade vi en timme per besök, nu är det högst fyrtiofem minuter.",
            "Jag skriver mina anteckningar direkt efteråt, annars glömmer jag hälften.",
            "Att improvisera är det mesta av jobbet, ärligt talat.",
        ],
        "question": [
            "Kan du berätta om en vanlig vecka?",
            "Kan du ge ett exempel?",
            "Vad händer när det inte blir som ni har planerat?",
            "Finns det något du skulle vilja ändra på i stödet?",
            "Vad brukar ni prata om?",
            "Kan du berätta lite mer om det?",
            "Vad är viktigast för dig?",
            "Hur skulle du beskriva relationen?",
            "Och hur kändes det?",
            "Mm. Och sen?",
            "Okej. Vad gjorde du då?",
            "Är det något mer du vill lägga till?",
        ],
        "question_user": [
            "Vad hjälper {W} dig med?",
            "Hur träffades du och {W} första gången?",
            "Du nämnde {PLACE} tidigare, vad hände där?",
            "Hur länge har du haft kontakt med {ORG}?",
        ],
        "question_worker": [
            "Hur planerar du besöken hos {U}?",
            "Vad tror du gjorde skillnaden för {U}?",
            "Vilka fler är inblandade, förutom {ORG}?",
        ],
        "digression": [
            "Förlåt, katten försöker hoppa upp på bordet.",
            "Spelar den in fortfarande? Bra.",
            "Såg du matchen i lördags? Bedrövligt.",
            "Det är så kallt här inne, jag måste fixa elementet.",
            "Grannen renoverar, du kanske hör borrandet.",
            "Men var var jag nu?",
            "Oj, det är min telefon, strunta i den.",
            "Vill du ha mer kaffe? Nej? Okej.",
        ],
        "back": ["Mm.", "Ja.", "Okej.", "Mm, ja.", "Jaha.", "Precis."],
        "back_again": [
            "Om vi går tillbaka till det du sa om stödet.",
            "Vi återvänder till besöken en stund.",
        ],
        "open_q": ["Tack för att du ställer upp. Ska vi börja?"],
        "open_a": ["Ja, kör.", "Ja, det går bra.", "Okej, jag är lite nervös men det går bra."],
        "close_q": ["Då har jag inga fler frågor. Tack så mycket, det här var jättehjälpsamt."],
        "close_a": ["Tack själv.", "Det var skönt att prata faktiskt.", "Ingen orsak."],
        "header": ["Transkription, intervju {pid} ({role}), inspelad {DATE}, {HOME}"],
    },
}

_SLOT = re.compile(r"\{([A-Z]+)(?:_([A-Za-z]+))?\}")
# Capitalised words an English speaker does not lower-case after "um, ".
_KEEP_CASE = frozenset({"I", "I'm", "I've", "I'd", "I'll", "Christmas", "Dr"})

Part = str | tuple[str, str]


def _compile(template: str) -> tuple[Part, ...]:
    parts: list[Part] = []
    pos = 0
    for m in _SLOT.finditer(template):
        if m.start() > pos:
            parts.append(template[pos : m.start()])
        parts.append((m.group(1), m.group(2) or ""))
        pos = m.end()
    if pos < len(template):
        parts.append(template[pos:])
    return tuple(parts)


_COMPILED = {
    lang: {kind: [_compile(t) for t in ts] for kind, ts in kinds.items()}
    for lang, kinds in TEMPLATES.items()
}


# --------------------------------------------------------------------------- identifiers


def luhn_check_digit(digits: str) -> int:
    """The Luhn digit that completes ``digits`` (Swedish personnummer: YYMMDDNNN)."""
    total = 0
    for i, ch in enumerate(digits):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return (10 - total % 10) % 10


def personnummer_valid(pnr: str) -> bool:
    """True when the last digit of a 10- or 12-digit personnummer is its Luhn digit."""
    digits = re.sub(r"\D", "", pnr)[-10:]
    return len(digits) == 10 and luhn_check_digit(digits[:9]) == int(digits[9])


def nhs_check_digit(nine: str) -> int | None:
    """Modulus-11 check digit of a 9-digit NHS number stem; None when no number is valid."""
    check = 11 - sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True)) % 11
    return 0 if check == 11 else None if check == 10 else check


def nhs_valid(number: str) -> bool:
    digits = re.sub(r"\D", "", number)
    return len(digits) == 10 and nhs_check_digit(digits[:9]) == int(digits[9])


def _personnummer(rng: random.Random, gender: str) -> str:
    year, month, day = rng.randint(1948, 1998), rng.randint(1, 12), rng.randint(1, 28)
    serial = rng.randint(0, 99) * 10 + rng.choice(
        (1, 3, 5, 7, 9) if gender == "man" else (0, 2, 4, 6, 8)
    )
    stem = f"{year % 100:02d}{month:02d}{day:02d}{serial:03d}"
    check = luhn_check_digit(stem)
    form = rng.random()
    if form < 0.6:
        return f"{stem[:6]}-{stem[6:]}{check}"
    if form < 0.85:
        return f"{year // 100}{stem[:6]}-{stem[6:]}{check}"
    return f"{year // 100}{stem}{check}"


def _nhs_number(rng: random.Random) -> str:
    while True:
        stem = str(rng.randint(400_000_000, 799_999_999))
        check = nhs_check_digit(stem)
        if check is not None:
            number = f"{stem}{check}"
            return number if rng.random() < 0.3 else f"{number[:3]} {number[3:6]} {number[6:]}"


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(n))


def _phone(rng: random.Random, lang: str) -> str:
    form = rng.randrange(5)
    if lang == "sv":
        if form == 4:
            return f"026-{_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}"
        p, a, b, c = (
            rng.choice(("070", "072", "073", "076", "079")),
            *(_digits(rng, k) for k in (3, 2, 2)),
        )
        return (
            f"{p}-{a} {b} {c}",
            f"{p}{a}{b}{c}",
            f"+46 {p[1:]} {a} {b} {c}",
            f"{p} {a} {b} {c}",
        )[form]
    if form == 4:
        return rng.choice(("0113", "0161", "0114")) + f" {_digits(rng, 3)} {_digits(rng, 4)}"
    a, b = "7" + _digits(rng, 3), _digits(rng, 6)
    return (f"0{a} {b}", f"0{a}{b}", f"+44 {a} {b}", f"020 {_digits(rng, 4)} {b[:4]}")[form]


def _postcode(rng: random.Random, lang: str) -> str:
    if lang == "sv":
        digits = str(rng.randint(10000, 98999))
        return f"{digits[:3]} {digits[3:]}" if rng.random() < 0.8 else digits
    area = rng.choice(("LS", "BD", "M", "SK", "S", "HD", "WF", "HG", "E", "SE", "N", "CR"))
    letters = "ABDEFGHJLNPQRSTUWXYZ"
    return (
        f"{area}{rng.randint(1, 19)} {rng.randint(0, 9)}{rng.choice(letters)}{rng.choice(letters)}"
    )


def _address(rng: random.Random, lang: str) -> str:
    street = rng.choice(STREETS[lang])
    number = rng.randint(1, 140)
    if lang == "sv":
        return f"{street} {number}{rng.choice(('', '', '', 'A', 'B'))}"
    return (
        f"Flat {rng.randint(1, 12)}, {number} {street}"
        if rng.random() < 0.2
        else f"{number} {street}"
    )


def _slug(value: str) -> str:
    ascii_ = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", ascii_.lower())


def _date(rng: random.Random, lang: str, variant: str) -> tuple[str, str]:
    """(prefix outside the span, date text); variant "w": written out, "m": month and year."""
    year, month, day = rng.randint(2015, 2024), rng.randint(1, 12), rng.randint(1, 28)
    name = MONTHS[lang][month - 1]
    if variant == "m":
        return "", f"{name} {year}"
    written = variant == "w"
    form = rng.randrange(5)
    if not written and rng.random() < 0.5:
        if lang == "sv":
            return "", (
                f"{year}-{month:02d}-{day:02d}",
                f"{day}/{month}",
                f"{day}/{month} {year}",
                f"{day:02d}.{month:02d}.{year}",
                f"{year}-{month:02d}-{day:02d}",
            )[form]
        return "", (
            f"{day:02d}/{month:02d}/{year}",
            f"{day}/{month}/{year % 100:02d}",
            f"{year}-{month:02d}-{day:02d}",
            f"{day:02d}.{month:02d}.{year}",
            f"{day}/{month}/{year}",
        )[form]
    if lang == "sv":
        suffix = ":a" if day % 10 in (1, 2) and day not in (11, 12) else ":e"
        prefix = "den " if rng.random() < 0.4 else ""
        return prefix, (
            f"{day} {name} {year}",
            f"{day} {name}",
            f"{day}{suffix} {name}",
            f"{day}{suffix} {name} {year}",
            f"{day} {name} {year}",
        )[form]
    th = "th" if 10 < day < 14 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return ("the " if form == 2 else ""), (
        f"{day} {name} {year}",
        f"{name} {day}{th}",
        f"{day}{th} of {name}",
        f"{day}{th} {name} {year}",
        f"{name} {day}, {year}",
    )[form]


# --------------------------------------------------------------------------- people


@dataclass
class _Person:
    key: str
    lang: str
    gender: str
    first: str
    surname: str
    age_band: str = ""
    relation: str = ""
    _attrs: dict[str, str] = field(default_factory=dict)

    def attr(self, name: str, seed: int, municipality: str) -> str:
        """A stable phone, e-mail, address, postcode or ID for this person."""
        if name not in self._attrs:
            rng = random.Random(f"{seed}:{self.key}:{name}")
            if name == "PHONE":
                value = _phone(rng, self.lang)
            elif name == "EMAIL":
                domain = rng.choice(EMAIL_DOMAINS[self.lang]).format(slug=_slug(municipality))
                local = rng.choice(
                    (
                        f"{_slug(self.first)}.{_slug(self.surname)}",
                        f"{_slug(self.first)}{rng.randint(1, 99)}",
                        f"{_slug(self.first)[0]}{_slug(self.surname)}",
                    )
                )
                value = f"{local}@{domain}"
            elif name == "ADDR":
                value = _address(rng, self.lang)
            elif name == "POST":
                value = _postcode(rng, self.lang)
            else:  # ID
                value = _personnummer(rng, self.gender) if self.lang == "sv" else _nhs_number(rng)
            self._attrs[name] = value
        return self._attrs[name]


def _person(seed: int, key: str, lang: str, *, relative: bool = False) -> _Person:
    rng = random.Random(f"{seed}:person:{key}")
    gender = rng.choice(("woman", "man"))
    relation = ""
    if relative:
        roles = RELATIVES[lang]
        relation = rng.choice(roles[gender] + roles["any"])
    return _Person(
        key,
        lang,
        gender,
        rng.choice(NAMES[lang][gender]),
        rng.choice(NAMES[lang]["surname"]),
        relation=relation,
    )


@dataclass
class _Pair:
    """One user and the worker the user named, in one municipality."""

    index: int
    lang: str
    municipality: str
    user: _Person
    worker: _Person
    relatives: list[_Person]
    staff: list[_Person]
    doctors: list[_Person]


def _pair(seed: int, language: str, p: int) -> _Pair:
    # Every sixth pair names the previous pair's worker: workers recur across documents.
    w = p - (p + 1) // 6
    wrng = random.Random(f"{seed}:worker:{w}")
    lang = language if language != "mixed" else wrng.choice(("en", "sv"))
    municipality = wrng.choice(MUNICIPALITIES[lang])
    worker = _person(seed, f"W{w + 1:03d}", lang)
    worker.age_band = wrng.choice(AGE_BANDS["worker"])
    user = _person(seed, f"U{p + 1:03d}", lang)
    urng = random.Random(f"{seed}:user:{p}")
    user.age_band = urng.choice(AGE_BANDS["user"])
    relatives = [
        _person(seed, f"U{p + 1:03d}-r{k}", lang, relative=True) for k in range(urng.randint(2, 4))
    ]
    staff = [_person(seed, f"staff:{municipality}:{k}", lang) for k in range(4)]
    doctors = [_person(seed, f"doctor:{municipality}:{k}", lang) for k in range(2)]
    return _Pair(p, lang, municipality, user, worker, relatives, staff, doctors)


# --------------------------------------------------------------------------- documents


class _Builder:
    """Accumulates text and spans; offsets are code points."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.words = 0
        self.spans: list[Span] = []
        self.keys: list[str] = []

    def add(self, s: str) -> None:
        self.parts.append(s)
        self.pos += len(s)
        self.words += s.count(" ")

    def entity(self, value: str, entity_type: str, key: str) -> None:
        self.spans.append((self.pos, self.pos + len(value), entity_type, value))
        self.keys.append(key)
        self.add(value)


class _Writer:
    """Renders one transcript of a pair, from the user's or the worker's side."""

    def __init__(self, seed: int, pair: _Pair, role: str, rng: random.Random) -> None:
        self.seed, self.pair, self.role, self.rng = seed, pair, role, rng
        self.lang = pair.lang
        self.speaker = pair.user if role == "user" else pair.worker
        self.b = _Builder()
        self.t = _COMPILED[self.lang]
        self.recent: dict[str, collections.deque[int]] = {}

    # slots ----------------------------------------------------------------
    def _person_slot(self, person: _Person, variant: str) -> None:
        b, key = self.b, f"person:{person.key}"
        if variant == "full":
            b.entity(f"{person.first} {person.surname}", "PERSON", key)
        elif variant == "sur":
            b.entity(person.surname, "PERSON", key)
        else:
            b.entity(person.first, "PERSON", key)
            if variant == "gen":
                b.add(self._genitive(person.first))

    def _genitive(self, name: str) -> str:
        if self.lang == "sv":
            return ("", "'")[self.rng.random() < 0.5] if name[-1] in "sxz" else "s"
        return ("'", "'s")[self.rng.random() < 0.5] if name.endswith("s") else "'s"

    def _choice_entity(self, values: Sequence[str], entity_type: str) -> None:
        value = self.rng.choice(values).format(m=self.pair.municipality)
        self.b.entity(value, entity_type, f"{entity_type.lower()}:{value}")

    def _slot(self, slot: str, variant: str, chosen: dict[str, _Person]) -> None:
        rng, pair, lang, b = self.rng, self.pair, self.lang, self.b
        if slot in ("W", "U", "S", "R", "C", "DOC"):
            if slot not in chosen:
                chosen[slot] = {
                    "W": pair.worker,
                    "U": pair.user,
                    "S": self.speaker,
                    "R": rng.choice(pair.relatives),
                    "C": rng.choice(pair.staff),
                    "DOC": rng.choice(pair.doctors),
                }[slot]
            person = chosen[slot]
            if variant == "role":
                b.add(person.relation)
            elif variant in ("pron", "Pron", "obj"):
                word = PRONOUNS[lang][person.gender][variant == "obj"]
                b.add(word.capitalize() if variant == "Pron" else word)
            else:
                self._person_slot(person, "sur" if slot == "DOC" else variant)
        elif slot == "HOME":
            b.entity(pair.municipality, "PLACE", f"place:{pair.municipality}")
        elif slot == "PLACE":
            r = rng.random()
            value = pair.municipality if r < 0.2 else rng.choice(TOWNS[lang])
            b.entity(value, "PLACE", f"place:{value}")
        elif slot == "AREA":
            self._choice_entity(AREAS[lang], "PLACE")
        elif slot == "ORG":
            self._choice_entity(ORGS[lang], "ORG")
        elif slot == "HOSP":
            self._choice_entity(HOSPITALS[lang], "ORG")
        elif slot == "SHOP":
            self._choice_entity(SHOPS[lang], "ORG")
        elif slot == "DATE":
            prefix, value = _date(rng, lang, variant)
            b.add(prefix)
            b.entity(value, "DATE", f"date:{value}")
        elif slot in ("ADDR", "POST", "PHONE", "EMAIL", "ID"):
            owner = self.speaker
            if slot in ("PHONE", "EMAIL") and rng.random() < 0.3:
                owner = pair.worker if owner is pair.user else pair.user
            value = owner.attr(slot, self.seed, pair.municipality)
            entity_type = {"ADDR": "ADDRESS", "POST": "POSTCODE"}.get(slot, slot)
            b.entity(value, entity_type, f"{entity_type.lower()}:{owner.key}")
        elif slot == "URL":
            value = rng.choice(URLS[lang]).format(slug=_slug(pair.municipality))
            b.entity(value, "URL", f"url:{value}")
        elif slot == "H":
            b.add(rng.choice(HESITATIONS[lang]))
        else:  # a typo in a template
            raise ValueError(f"unknown template slot {slot!r}")

    # sentences ------------------------------------------------------------
    def sentence(self, kind: str, *, hesitate: float = 0.0) -> None:
        rng, templates = self.rng, self.t[kind]
        # Avoid repeating a recent template of the same kind, as a speaker would.
        recent = self.recent.setdefault(kind, collections.deque(maxlen=len(templates) // 2))
        for _ in range(4):
            index = rng.randrange(len(templates))
            if index not in recent:
                break
        recent.append(index)
        parts = templates[index]
        chosen: dict[str, _Person] = {}
        if hesitate and rng.random() < hesitate:
            parts = self._hesitate(parts)
        for part in parts:
            if isinstance(part, str):
                self.b.add(part)
            else:
                self._slot(part[0], part[1], chosen)

    def _two(self, first: str, second: str) -> None:
        self.sentence(first)
        self.b.add(" ")
        self.sentence(second)

    def _hesitate(self, parts: tuple[Part, ...]) -> tuple[Part, ...]:
        word = self.rng.choice(HESITATIONS[self.lang])
        first = parts[0]
        if isinstance(first, str) and self.rng.random() < 0.7:
            head = first.split(" ", 1)[0].rstrip(",.?!:")
            if self.lang == "sv" or head not in _KEEP_CASE:
                first = first[0].lower() + first[1:]
            return (f"{word.capitalize()}, {first}", *parts[1:])
        return (f"{word.capitalize()}... ", *parts)

    # document -------------------------------------------------------------
    def transcript(self, target_words: int, density: float) -> str:
        rng, b = self.rng, self.b
        pid = self.speaker.key
        iv_label, p_label = rng.choice(LABEL_STYLES[self.lang])
        p_label = p_label.format(n=int(pid[1:]), pid=pid)
        sep = "\n\n" if rng.random() < 0.7 else "\n"
        clock = 0.0 if rng.random() < 0.25 else None
        kind_id = f"{self.role}_id"
        q_id = f"question_{self.role}"

        def turn(label: str, body: Callable[[], None]) -> None:
            nonlocal clock
            if clock is not None:
                s = int(clock)
                b.add(f"[{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}] ")
            before = b.words
            b.add(label + " ")
            body()
            b.add(sep)
            b.words += 1  # the turn's last word has no space after it
            if clock is not None:
                clock += 0.4 * (b.words - before) + rng.uniform(1, 4)

        digressed = False

        def answer() -> None:
            nonlocal digressed
            if rng.random() < 0.05:
                self.sentence("digression")
                digressed = True
                return
            for i in range(rng.choice((1, 1, 2, 3, 3, 4, 5, 6, 8))):
                if i:
                    b.add(" ")
                kind = kind_id if rng.random() < density else self.role
                self.sentence(kind, hesitate=0.2)
                if rng.random() < 0.07:
                    b.add(" " + rng.choice(ANNOTATIONS[self.lang]))

        if rng.random() < 0.5:
            header = TEMPLATES[self.lang]["header"][0]
            head, _, tail = header.partition("{DATE}")
            b.add(head.format(pid=pid, role=ROLE_WORDS[self.lang][self.role]))
            self._slot("DATE", "", {})
            b.add(tail.partition("{HOME}")[0])
            self._slot("HOME", "", {})
            b.add(sep)
        turn(iv_label, lambda: self.sentence("open_q"))
        turn(p_label, lambda: self.sentence("open_a"))
        while b.words < target_words:
            q = q_id if rng.random() < density else "question"
            if digressed:  # the interviewer steers back before the next question
                turn(iv_label, functools.partial(self._two, "back_again", q))
                digressed = False
            else:
                turn(iv_label, functools.partial(self.sentence, q))
            turn(p_label, answer)
            if rng.random() < 0.15:
                turn(iv_label, lambda: self.sentence("back"))
                turn(p_label, answer)
        turn(iv_label, lambda: self.sentence("close_q"))
        turn(p_label, lambda: self.sentence("close_a"))
        return "".join(b.parts)


def _document(
    seed: int, language: str, i: int, density: float, words: Callable[[random.Random], int]
) -> LabelledDoc:
    p, role = divmod(i, 2)
    pair = _pair(seed, language, p)
    rng = random.Random(f"{seed}:doc:{i}")
    writer = _Writer(seed, pair, "user" if role == 0 else "worker", rng)
    text = writer.transcript(words(rng), density)
    speaker = writer.speaker
    meta = {
        "participant": speaker.key,
        "role": ROLES[writer.role],
        "gender": speaker.gender,
        "age_band": speaker.age_band,
        "municipality": pair.municipality,
        "pair": f"P{p + 1}",
        "language": pair.lang,
    }
    return LabelledDoc(f"s{seed}-{i + 1:05d}", text, pair.lang, writer.b.spans, writer.b.keys, meta)


def _check(language: str, density: float) -> None:
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density is a probability between 0 and 1, got {density!r}")


def generate_labelled(
    n_docs: int,
    language: str = "mixed",
    seed: int = 0,
    density: float = 0.3,
    words: tuple[int, int] = (300, 1200),
) -> list[LabelledDoc]:
    """``n_docs`` transcripts (users and their workers alternate) with labelled identifiers.

    ``density`` is the probability that a participant's sentence (or an interviewer's
    question) is drawn from the templates that carry identifiers; ``words`` bounds each
    transcript's length. With ``language="mixed"`` each pair is English or Swedish.
    """
    _check(language, density)
    lo, hi = words
    return [
        _document(seed, language, i, density, lambda r: r.randint(lo, hi)) for i in range(n_docs)
    ]


def _corpus_length(rng: random.Random) -> int:
    # Log-normal around 6,000 words (about 45 minutes of talk), clipped to 2k-20k words.
    return int(min(20_000, max(2_000, math.exp(rng.gauss(math.log(6_000), 0.6)))))


def iter_labelled(
    seed: int = 1, language: str = "mixed", density: float = 0.3
) -> Iterator[LabelledDoc]:
    """An endless stream of full-length transcripts (2k-20k words), labelled."""
    _check(language, density)
    i = 0
    while True:
        yield _document(seed, language, i, density, _corpus_length)
        i += 1


def generate_corpus(
    target_bytes: int, seed: int = 1, language: str = "mixed", density: float = 0.3
) -> Iterator[tuple[str, str]]:
    """(doc_id, text) pairs until their UTF-8 size reaches ``target_bytes``."""
    total = 0
    for doc in iter_labelled(seed, language, density):
        if total >= target_bytes:
            return
        total += len(doc.text.encode("utf-8"))
        yield doc.doc_id, doc.text


MANIFEST_COLUMNS = ("file", "participant", "role", "gender", "age_band", "municipality", "pair")


def write_corpus(
    out: Path,
    target_bytes: int | None,
    seed: int = 1,
    language: str = "mixed",
    labels: bool = False,
    *,
    density: float = 0.3,
    count: int | None = None,
) -> tuple[int, int]:
    """Write ``<doc_id>.txt`` files and participants.csv (plus labels.jsonl); (files, bytes).

    Stops once the files reach ``target_bytes`` (UTF-8) or, with ``count``, after exactly
    ``count`` transcripts (then ``target_bytes`` may be None). ``density`` as in
    :func:`generate_labelled`.
    """
    if count is None and target_bytes is None:
        raise ValueError("write_corpus needs target_bytes or count")
    if count is not None and count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    _check(language, density)
    out.mkdir(parents=True, exist_ok=True)
    n = total = 0
    with (
        (out / "participants.csv").open("w", newline="", encoding="utf-8") as manifest,
        (out / "labels.jsonl").open("w", encoding="utf-8")
        if labels
        else contextlib.nullcontext() as label_file,
    ):
        rows = csv.writer(manifest)
        rows.writerow(MANIFEST_COLUMNS)
        for doc in iter_labelled(seed, language, density):
            if n == count if count is not None else total >= (target_bytes or 0):
                break
            data = doc.text.encode("utf-8")
            name = f"{doc.doc_id}.txt"
            (out / name).write_bytes(data)
            rows.writerow([name, *(doc.meta[c] for c in MANIFEST_COLUMNS[1:])])
            if label_file is not None:
                record = {
                    "file": name,
                    "language": doc.language,
                    "spans": doc.spans,
                    "keys": doc.entity_keys,
                }
                label_file.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
            total += len(data)
    return n, total


# --------------------------------------------------------------------------- scoring

_TOKEN = re.compile(r"\w+")


def _offsets(span: object) -> tuple[int, int]:
    if hasattr(span, "start") and hasattr(span, "end"):
        return int(span.start), int(span.end)
    start, end = span[0], span[1]  # type: ignore[index]
    return int(start), int(end)


def evaluate_labelled(
    docs: Sequence[LabelledDoc], masks: Mapping[str, Iterable[object]]
) -> dict[str, Any]:
    """Score masks ({doc_id: [(start, end) or Span, ...]}) against the labelled identifiers.

    An identifier is caught when every letter and digit of it lies in a mask (a leftover
    possessive suffix is outside the span anyway). Token precision: of the ``\\w+`` tokens
    inside masks, the share that lie wholly inside labelled identifiers.
    """
    by_type: dict[str, list[int]] = {t: [0, 0] for t in ENTITY_TYPES}
    tokens = confirmed = 0
    for doc in docs:
        text = doc.text
        covered = bytearray(len(text))
        spans = [_offsets(s) for s in masks.get(doc.doc_id, ())]
        for start, end in spans:
            start, end = max(0, start), min(len(text), end)
            covered[start:end] = b"\x01" * max(0, end - start)
        labelled = bytearray(len(text))
        for start, end, entity_type, _ in doc.spans:
            labelled[start:end] = b"\x01" * (end - start)
            row = by_type.setdefault(entity_type, [0, 0])
            row[1] += 1
            row[0] += all(covered[i] or not text[i].isalnum() for i in range(start, end))
        masked_tokens = {m.span() for s, e in spans for m in _TOKEN.finditer(text, s, e)}
        for start, end in masked_tokens:
            tokens += 1
            confirmed += all(labelled[start:end])
    caught = sum(r[0] for r in by_type.values())
    total = sum(r[1] for r in by_type.values())
    return {
        "recall": caught / total if total else 0.0,
        "recall_by_type": {t: r[0] / r[1] for t, r in by_type.items() if r[1]},
        "token_precision": confirmed / tokens if tokens else 0.0,
        "counts": {
            "documents": len(docs),
            "identifiers": total,
            "caught": caught,
            "by_type": {t: r[1] for t, r in by_type.items() if r[1]},
            "masked_tokens": tokens,
            "confirmed_tokens": confirmed,
        },
    }


def _load_system(ref: str) -> Callable[[dict[str, str]], Mapping[str, Iterable[object]]]:
    module_name, _, func_name = ref.partition(":")
    if not module_name or not func_name:
        raise SystemExit(f"corpus: --system wants MODULE:FUNCTION, got {ref!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise SystemExit(f"corpus: cannot load --system {ref!r}: {exc}") from None
    return func  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write synthetic interview transcripts (--out), or score a masking "
        "function on labelled ones (--system)."
    )
    parser.add_argument("--out", type=Path, help="write transcripts to this folder")
    parser.add_argument("--mb", type=float, default=100.0, help="total size in MB (10^6 bytes)")
    parser.add_argument(
        "--transcripts",
        type=int,
        metavar="N",
        help="--out: write exactly N transcripts (instead of --mb)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--language", choices=LANGUAGES, default="mixed")
    parser.add_argument("--labels", action="store_true", help="also write labels.jsonl")
    parser.add_argument(
        "--system",
        metavar="MODULE:FUNCTION",
        help="score FUNCTION({doc_id: text}) -> {doc_id: [(start, end)]} on labelled documents",
    )
    parser.add_argument("--docs", type=int, default=200, help="documents for --system")
    parser.add_argument(
        "--density",
        type=float,
        default=0.3,
        help="identifier density: the share of sentences that carry identifiers (0-1)",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="--system: write results")
    args = parser.parse_args(argv)
    if not args.out and not args.system:
        parser.error("give --out DIR to write a corpus, or --system MODULE:FUNCTION to score one")
    try:
        _check(args.language, args.density)
    except ValueError as exc:
        parser.error(str(exc))
    if args.transcripts is not None and args.transcripts < 0:
        parser.error(f"--transcripts must be 0 or more, got {args.transcripts}")
    if args.out:
        t0 = time.perf_counter()
        n, total = write_corpus(
            args.out,
            int(args.mb * 1_000_000),
            args.seed,
            args.language,
            args.labels,
            density=args.density,
            count=args.transcripts,
        )
        elapsed = time.perf_counter() - t0
        print(
            f"wrote {n} transcripts, {total / 1e6:.1f} MB, to {args.out} "
            f"(+ participants.csv) in {elapsed:.1f} s"
        )
    if args.system:
        func = _load_system(args.system)
        docs = generate_labelled(args.docs, args.language, args.seed, args.density)
        texts = {d.doc_id: d.text for d in docs}
        t0 = time.perf_counter()
        masks = func(texts)
        elapsed = time.perf_counter() - t0
        result = evaluate_labelled(docs, masks)
        chars = sum(len(t) for t in texts.values())
        result["chars_per_second"] = chars / elapsed if elapsed else None
        c = result["counts"]
        print(
            f"{args.system} on {c['documents']} synthetic transcripts ({args.language}, seed "
            f"{args.seed}): recall {result['recall']:.3f} ({c['caught']}/{c['identifiers']}), "
            f"token precision {result['token_precision']:.3f}, {chars / elapsed:,.0f} chars/s"
        )
        for entity_type, recall in result["recall_by_type"].items():
            print(f"  {entity_type:<9} {recall:.3f}  (n={c['by_type'][entity_type]})")
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
