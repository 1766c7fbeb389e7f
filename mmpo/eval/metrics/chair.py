"""CHAIR object hallucination on MSCOCO, the variant VLM papers report.

CHAIR (Rohrbach et al. 2018, "Object Hallucination in Image Captioning", arXiv:1809.02156)
maps every word of a caption to one of the 80 COCO categories through a synonym list and
calls a mentioned object hallucinated when the image's ground truth lacks it:

    CHAIR_s = captions with ≥ 1 hallucinated mention / captions
    CHAIR_i = hallucinated mentions / all mentions            (each occurrence counts)
    recall  = Σ distinct ground-truth objects mentioned / Σ ground-truth objects (per caption)

This follows the variant of OPERA / Object HalBench / mDPO's tables (shikiw/OPERA
``chair.py``, itself LisaAnne/Hallucination's script ported to Python 3): lower-case →
``nltk.word_tokenize`` → ``nltk.pos_tag`` → WordNet lemmatizer with the tag's WordNet POS
(noun when the tag has none) → greedy merge of two-word objects → synonym lookup. Its
synonym list, two-word list and special cases are reproduced as they are, typos included
("televison"; " motor bike" and " cheesecake" carry a leading space after a double comma
and never match; "iPhone" never matches lower-cased text). The text pipeline is
:mod:`mmpo.eval.nlp` (offline; see there which data it uses).

Everything here is pure: captions and ground-truth sets in, figures and per-caption
reports out. :mod:`mmpo.eval.benchmarks.coco_chair` reads COCO's files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from mmpo.eval import nlp

# The reference's synonyms.txt: one COCO category per line, its name first, then synonyms.
SYNONYMS_TXT = """
person, girl, boy, man, woman, kid, child, chef, baker, people, adult, rider, children, baby, worker, passenger, sister, biker, policeman, cop, officer, lady, cowboy, bride, groom, male, female, guy, traveler, mother, father, gentleman, pitcher, player, skier, snowboarder, skater, skateboarder, person, woman, guy, foreigner, child, gentleman, caller, offender, coworker, trespasser, patient, politician, soldier, grandchild, serviceman, walker, drinker, doctor, bicyclist, thief, buyer, teenager, student, camper, driver, solider, hunter, shopper, villager
bicycle, bike, bicycle, bike, unicycle, minibike, trike
car, automobile, van, minivan, sedan, suv, hatchback, cab, jeep, coupe, taxicab, limo, taxi
motorcycle, scooter,  motor bike, motor cycle, motorbike, scooter, moped
airplane, jetliner, plane, air plane, monoplane, aircraft, jet, jetliner, airbus, biplane, seaplane
bus, minibus, trolley
train, locomotive, tramway, caboose
truck, pickup, lorry, hauler, firetruck
boat, ship, liner, sailboat, motorboat, dinghy, powerboat, speedboat, canoe, skiff, yacht, kayak, catamaran, pontoon, houseboat, vessel, rowboat, trawler, ferryboat, watercraft, tugboat, schooner, barge, ferry, sailboard, paddleboat, lifeboat, freighter, steamboat, riverboat, battleship, steamship
traffic light, street light, traffic signal, stop light, streetlight, stoplight
fire hydrant, hydrant
stop sign
parking meter
bench, pew
bird, ostrich, owl, seagull, goose, duck, parakeet, falcon, robin, pelican, waterfowl, heron, hummingbird, mallard, finch, pigeon, sparrow, seabird, osprey, blackbird, fowl, shorebird, woodpecker, egret, chickadee, quail, bluebird, kingfisher, buzzard, willet, gull, swan, bluejay, flamingo, cormorant, parrot, loon, gosling, waterbird, pheasant, rooster, sandpiper, crow, raven, turkey, oriole, cowbird, warbler, magpie, peacock, cockatiel, lorikeet, puffin, vulture, condor, macaw, peafowl, cockatoo, songbird
cat, kitten, feline, tabby
dog, puppy, beagle, pup, chihuahua, schnauzer, dachshund, rottweiler, canine, pitbull, collie, pug, terrier, poodle, labrador, doggie, doberman, mutt, doggy, spaniel, bulldog, sheepdog, weimaraner, corgi, cocker, greyhound, retriever, brindle, hound, whippet, husky
horse, colt, pony, racehorse, stallion, equine, mare, foal, palomino, mustang, clydesdale, bronc, bronco
sheep, lamb, ram, lamb, goat, ewe
cow, cattle, oxen, ox, calf, cattle, holstein, heifer, buffalo, bull, zebu, bison 
elephant
bear, panda
zebra
giraffe
backpack, knapsack
umbrella
handbag, wallet, purse, briefcase
tie, bow, bow tie
suitcase, suit case, luggage
frisbee
skis, ski
snowboard
sports ball, ball
kite
baseball bat
baseball glove
skateboard
surfboard, longboard, skimboard, shortboard, wakeboard
tennis racket, racket
bottle
wine glass
cup
fork
knife, pocketknife, knive
spoon
bowl, container
banana
apple
sandwich, burger, sub, cheeseburger, hamburger
orange
broccoli
carrot
hot dog
pizza
donut, doughnut, bagel
cake,  cheesecake, cupcake, shortcake, coffeecake, pancake
chair, seat, stool
couch, sofa, recliner, futon, loveseat, settee, chesterfield 
potted plant, houseplant
bed
dining table, table, desk
toilet, urinal, commode, toilet, lavatory, potty
tv, monitor, televison, television
laptop, computer, notebook, netbook, lenovo, macbook, laptop computer
mouse
remote
keyboard
cell phone, mobile phone, phone, cellphone, telephone, phon, smartphone, iPhone
microwave
oven, stovetop, stove, stove top oven
toaster
sink
refrigerator, fridge, fridge, freezer
book
clock
vase
scissors
teddy bear, teddybear
hair drier, hairdryer
toothbrush
"""

# Two-word objects merged before lookup, as the reference lists them.
DOUBLE_WORDS = (
    "motor bike", "motor cycle", "air plane", "traffic light", "street light", "traffic signal", "stop light",
    "fire hydrant", "stop sign", "parking meter", "suit case", "sports ball", "baseball bat", "baseball glove",
    "tennis racket", "wine glass", "hot dog", "cell phone", "mobile phone", "teddy bear", "hair drier",
    "potted plant", "bow tie", "laptop computer", "stove top oven", "home plate", "train track",
)
# "baby bird" is a bird, not a person; "passenger jet" a jet.
ANIMAL_WORDS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "animal", "cub")
VEHICLE_WORDS = ("jet", "train")


@dataclass(frozen=True)
class Vocabulary:
    """The reference's lookup tables: every synonym → its category ("node word"), and
    two-word phrases → the word they are treated as."""

    objects: frozenset[str]
    node_of: Mapping[str, str]
    double_words: Mapping[str, str]


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    node_of: dict[str, str] = {}
    objects: set[str] = set()
    for line in SYNONYMS_TXT.splitlines():
        names = line.strip().split(", ")  # the reference's split: a double space leaves " motor bike"
        objects.update(names)
        for name in names:
            node_of[name] = names[0]  # a later line wins, as in the reference's dict
    double = {w: w for w in DOUBLE_WORDS}
    for animal in ANIMAL_WORDS:
        double[f"baby {animal}"] = animal
        double[f"adult {animal}"] = animal
    for vehicle in VEHICLE_WORDS:
        double[f"passenger {vehicle}"] = vehicle
    double["bow tie"] = "tie"
    double["toilet seat"] = "toilet"
    double["wine glas"] = "wine glass"
    return Vocabulary(frozenset(objects), node_of, double)


def _wordnet_pos(tag: str) -> str:
    """The WordNet POS of a Penn tag: J → adjective, V → verb, R → adverb, anything else noun."""
    return {"J": "a", "V": "v", "R": "r"}.get(tag[:1], "n")


@dataclass
class CaptionObjects:
    """The COCO objects one caption mentions, in order, one entry per occurrence."""

    words: list[str]        # the matched (lemmatized) word, e.g. "puppy"
    node_words: list[str]   # its category, e.g. "dog"
    surface: list[str]      # the caption's own tokens for it, e.g. "puppies"
    idxs: list[int]         # the reference's idxs: lemma position of the mention (see caption_objects)
    merged: list[str] = field(default_factory=list)  # the whole lemma sequence after merging


def caption_objects(caption: str) -> CaptionObjects:
    """The COCO objects ``caption`` mentions, exactly as the reference's ``caption_to_words``."""
    vocab = vocabulary()
    tokens = nlp.word_tokenize(caption.lower())
    lemmas = [nlp.lemmatize(word, _wordnet_pos(tag)) for word, tag in nlp.pos_tag(tokens)]
    merged, starts, spans = [], [], []
    i = 0
    while i < len(lemmas):
        pair = " ".join(lemmas[i : i + 2])
        starts.append(i)
        if pair in vocab.double_words:
            merged.append(vocab.double_words[pair])
            spans.append(2)
            i += 2
        else:
            merged.append(lemmas[i])
            spans.append(1)
            i += 1
    drop_seat = "toilet" in merged and "seat" in merged  # "the seat of the toilet" is no chair
    remaining = [k for k, word in enumerate(merged) if not (drop_seat and word == "seat")]
    kept = [j for j, k in enumerate(remaining) if merged[k] in vocab.objects]  # positions in `remaining`
    return CaptionObjects(
        words=[merged[remaining[j]] for j in kept],
        node_words=[vocab.node_of[merged[remaining[j]]] for j in kept],
        surface=[" ".join(tokens[starts[remaining[j]] : starts[remaining[j]] + spans[remaining[j]]]) for j in kept],
        # the reference indexes its unfiltered start positions with positions counted after
        # dropping "seat", so mentions after a dropped seat point one merged word early: kept
        idxs=[starts[j] for j in kept],
        merged=merged,
    )


def node_words(caption: str) -> list[str]:
    """The categories ``caption`` mentions, one per occurrence (used for reference captions)."""
    return caption_objects(caption).node_words


@dataclass
class CaptionReport:
    """One caption against its image's ground truth (the reference's per-sentence record)."""

    hallucinated: list[tuple[str, str]]  # (word, category) per hallucinated occurrence
    hallucinated_surface: list[str]
    generated: list[str]                 # categories mentioned, per occurrence
    recalled: set[str]                   # ground-truth categories mentioned
    objects: CaptionObjects
    hallucination_idxs: list[int]

    @property
    def chair_s(self) -> int:
        return int(bool(self.hallucinated))

    @property
    def chair_i(self) -> float:
        return len(self.hallucinated) / len(self.generated) if self.generated else 0.0


def objects_from_list(names: Iterable[str]) -> CaptionObjects:
    """COCO objects of an already-extracted object list (an LLM's, as in RLAIF-V's Object
    HalBench): the toilet-seat rule, then the synonym lookup, one entry per name."""
    vocab = vocabulary()
    names = list(names)
    drop_seat = "toilet" in names and "seat" in names
    kept = [k for k, name in enumerate(names) if name in vocab.objects and not (drop_seat and name == "seat")]
    return CaptionObjects(words=[names[k] for k in kept], node_words=[vocab.node_of[names[k]] for k in kept],
                          surface=[names[k] for k in kept], idxs=kept, merged=names)


def score_caption(caption: str, truth: Iterable[str]) -> CaptionReport:
    return score_objects(caption_objects(caption), truth)


def score_objects(objects: CaptionObjects, truth: Iterable[str]) -> CaptionReport:
    truth = set(truth)
    hallucinated, surface, idxs, recalled = [], [], [], set()
    for word, node, text, idx in zip(objects.words, objects.node_words, objects.surface, objects.idxs):
        if node in truth:
            recalled.add(node)
        else:
            hallucinated.append((word, node))
            surface.append(text)
            idxs.append(idx)
    return CaptionReport(hallucinated, surface, list(objects.node_words), recalled, objects, idxs)


def chair_scores(reports: Sequence[CaptionReport], truths: Sequence[set[str]]) -> dict[str, float | int]:
    """CHAIR_s, CHAIR_i, recall and mean length over scored captions (fractions; the
    reference prints them × 100). ``truths[k]`` is the ground truth ``reports[k]`` was scored
    against; an image's objects count once per caption of it, as in the reference."""
    if len(reports) != len(truths):
        raise ValueError(f"{len(reports)} caption reports but {len(truths)} ground truths")
    mentions = sum(len(r.generated) for r in reports)
    hallucinated = sum(len(r.hallucinated) for r in reports)
    gt_total = sum(len(t) for t in truths)
    n = len(reports)
    return {
        "chair_s": sum(r.chair_s for r in reports) / n if n else 0.0,
        "chair_i": hallucinated / mentions if mentions else 0.0,
        "recall": sum(len(r.recalled) for r in reports) / gt_total if gt_total else 0.0,
        "avg_len": sum(len(r.objects.merged) for r in reports) / n if n else 0.0,
        "n_captions": n,
        "n_mentions": mentions,
        "n_hallucinated": hallucinated,
    }
