"""The published taggers autotag can import, and what is known of each.

Won et al. 2020 ("Evaluation of CNN-based automatic music tagging models", SMC 2020)
released FCN, musicnn and CRNN weights trained on MagnaTagATune, the Million Song Dataset
and MTG-Jamendo (MIT licence, Music Technology Group, Universitat Pompeu Fabra). Their
input recipe is this project's own front end (16 kHz, n_fft 512, hop 256, 96 mels up to
8 kHz, power in dB) and their networks are in `autotag.models`, so an import is a key
mapping, not a conversion. Nothing here imports torch: `pretrained list` is instant.

The digests are those of the files at the pinned commit of the public fork that keeps
them (philtgun/music-tagging-benchmark): a download is accepted only when it matches.
"""

from __future__ import annotations

from dataclasses import dataclass

from autotag.errors import AutotagError

#: The fork that keeps the weights of minzwon/sota-music-tagging-models at a fixed commit, and
#: their scores; its `models/{data}/{network}/best_model.pth` are the files below.
_FORK = "https://raw.githubusercontent.com/philtgun/music-tagging-benchmark/723f2cbef18e25f29e0f7b18a6695d2798ee3aea"
_CREDIT = (
    "Won, Ferraro, Bogdanov & Serra, Evaluation of CNN-based automatic music tagging models, SMC 2020; "
    "github.com/minzwon/sota-music-tagging-models"
)
_LICENCE = "MIT (Copyright (c) 2020 Music Technology Group, Universitat Pompeu Fabra)"

#: The 50 MagnaTagATune tags in the models' output order (split/mtat/tags.npy of the repository).
MTAT_TAGS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
    "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
    "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop",
    "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance", "male voice",
    "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip
#: The 50 last.fm tags of the Million Song Dataset in output order (split/msd/50tagList.txt).
MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock",
    "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb",
    "indie pop", "sad", "House", "happy",
)  # fmt: skip
#: MTG-Jamendo's top-50 tags. The training code binarised them with scikit-learn's
#: LabelBinarizer, which sorts its classes: the output order is the sorted order.
JAMENDO_TAGS = tuple(sorted((
    "genre---downtempo", "genre---ambient", "genre---rock", "instrument---synthesizer", "genre---atmospheric",
    "genre---indie", "instrument---electricpiano", "genre---newage", "instrument---strings", "instrument---drums",
    "instrument---drummachine", "genre---techno", "instrument---guitar", "genre---alternative",
    "genre---easylistening", "genre---instrumentalpop", "genre---chillout", "genre---metal", "mood/theme---happy",
    "genre---lounge", "genre---reggae", "genre---popfolk", "genre---orchestral", "instrument---acousticguitar",
    "genre---poprock", "instrument---piano", "genre---trance", "genre---dance", "instrument---electricguitar",
    "genre---soundtrack", "genre---house", "genre---hiphop", "genre---classical", "mood/theme---energetic",
    "genre---electronic", "genre---world", "genre---experimental", "instrument---violin", "genre---folk",
    "mood/theme---emotional", "instrument---voice", "instrument---keyboard", "genre---pop", "instrument---bass",
    "instrument---computer", "mood/theme---film", "genre---triphop", "genre---jazz", "genre---funk",
    "mood/theme---relaxing",
)))  # fmt: skip

_DATA = {
    "mtat": ("MagnaTagATune, top 50 tags", MTAT_TAGS),
    "msd": ("Million Song Dataset, top 50 last.fm tags", MSD_TAGS),
    "jamendo": ("MTG-Jamendo autotagging_top50tags, split 0", JAMENDO_TAGS),
}
#: Input length of each network as it was evaluated (29 s for FCN and CRNN, 3 s chunks for musicnn).
_CHUNK_SECONDS = {"fcn": 29.1, "musicnn": 3.0, "crnn": 29.1}


@dataclass(frozen=True)
class Published:
    """One published tagger.

    Attributes:
        name: The catalogue name (`pretrained get NAME`).
        network: autotag's model of the same layers (`autotag.models.architectures`).
        data: Which of MTAT, MSD, MTG-Jamendo it was trained on (`mtat`, `msd`, `jamendo`).
        file: Its file name in a mirror (`AUTOTAG_PRETRAINED_DIR`) and in the download cache.
        sha256: The digest a file must have to be imported.
        size: Bytes.
        roc_auc, pr_auc: Macro scores on the test split of its own data set as its authors
            published them (None: not published); never measured here.
        scores_from: Where the scores come from.
    """

    name: str
    network: str
    data: str
    file: str
    sha256: str
    size: int
    roc_auc: float | None
    pr_auc: float | None
    scores_from: str

    @property
    def trained_on(self) -> str:
        return _DATA[self.data][0]

    @property
    def tags(self) -> tuple[str, ...]:
        """Its output labels, in output order."""
        return _DATA[self.data][1]

    @property
    def chunk_seconds(self) -> float:
        return _CHUNK_SECONDS[self.network]

    @property
    def url(self) -> str:
        """Where a user on the internet downloads it from (a digest-checked, pinned copy)."""
        return f"{_FORK}/models/{self.data}/{self.network}/best_model.pth"

    credit: str = _CREDIT
    licence: str = _LICENCE


def _entry(data: str, network: str, sha256: str, size: int, roc: float | None, pr: float | None, src: str) -> Published:
    return Published(f"{data}-{network}", network, data, f"{data}_{network}.pth", sha256, size, roc, pr, src)


CATALOGUE: dict[str, Published] = {
    p.name: p
    for p in (
        _entry("mtat", "fcn", "3bfc67e43f3e180194ab5993c947ffbf44b1a23dcdf42c374b1ced9d4d4de72e", 1902811,
               0.9002, 0.4295, "ROC-AUC: the fork's evaluation; PR-AUC: Won et al. 2020"),
        _entry("mtat", "musicnn", "0a7ac8aa3daab3a1c59cae16a771b0bfa4064ac94502ebc990a5c32a2771e189", 3257164,
               0.9109, 0.4493, "ROC-AUC: the fork's evaluation; PR-AUC: Won et al. 2020"),
        _entry("msd", "fcn", "6012aa7eecf864a8081faedca56af054521e8dfb9c5c98659a3dd5d3e1e66f21", 1902815,
               0.8741, None, "the fork's evaluation"),
        _entry("msd", "crnn", "ebb99855ed0c83f38845db9cfb383dd6fc70938bc58701dcb66e18af9ee7fbea", 1687711,
               None, None, "not published with the file"),
        _entry("jamendo", "fcn", "7bce08a66dbc70d096b0a330f44b4cacd9aa25519b83489fbb98f2164a194e2b", 1902815,
               0.8253, None, "the fork's evaluation"),
        _entry("jamendo", "musicnn", "66280f4859376377c47f64313c7ac889a3201fdb06a01bf6e94ac6e619081bb5", 3257168,
               0.8216, None, "the fork's evaluation"),
        _entry("jamendo", "crnn", "0a558989c0793f488cb677d188464c91f47c007f7c70473230e55537ca598215", 1687626,
               None, None, "not published with the file"),
    )
}  # fmt: skip


#: What the Tag page offers someone who has trained nothing: MagnaTagATune's 50 tags are the
#: everyday ones (guitar, classical, rock, techno, female vocal, ...), and its file is the smallest.
FIRST_CHOICE = "mtat-fcn"


class CatalogueError(AutotagError):
    """A name the catalogue does not have; the message lists the names it has."""


def published(name: str) -> Published:
    """The catalogue's entry `name`.

    Raises:
        CatalogueError: no such entry.
    """
    try:
        return CATALOGUE[name]
    except KeyError:
        raise CatalogueError(f"no published model {name!r}; the catalogue has {', '.join(CATALOGUE)}") from None
