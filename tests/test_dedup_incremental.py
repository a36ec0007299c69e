"""dedup.update_groups: the incremental group map equals a brute-force full regroup, at the cost of the change."""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer import dedup
from indexer.dedup import THRESHOLD, band_keys, cluster_count, signature, similarity, update_groups

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_rng = random.Random(20240229)
VOCAB = ["".join(_rng.choice(_LETTERS) for _ in range(_rng.randint(3, 9))) for _ in range(4000)]
WORDS = 240  # long enough that 1–3 changed words keep a copy well above THRESHOLD


def _text(rng: random.Random) -> list[str]:
    return [rng.choice(VOCAB) for _ in range(WORDS)]


def _edit(words: list[str], rng: random.Random, changes: int) -> list[str]:
    out = list(words)
    for i in rng.sample(range(len(out)), changes):
        out[i] = rng.choice(VOCAB)
    return out


def _sig(words: list[str]) -> np.ndarray:
    return signature(" ".join(words))


def _keys(sig: np.ndarray) -> set[tuple[int, int]]:
    return set(enumerate(band_keys(sig)))


def _edge(a: np.ndarray, b: np.ndarray) -> bool:
    """What the full regroup keeps: a shared band key and an estimated similarity at the threshold."""
    return bool(_keys(a) & _keys(b)) and similarity(a, b) >= THRESHOLD


# ------------------------------------------------------------------ reference
def reference(live: dict[int, np.ndarray]) -> dict[int, int]:
    """Full regroup by brute force: every pair sharing a band key, union-find, group = min row."""
    parent = {r: r for r in live}

    def find(a: int) -> int:
        while parent[a] != a:
            a = parent[a]
        return a

    rows = sorted(live)
    keys = {r: _keys(live[r]) for r in rows}
    for i, a in enumerate(rows):
        for b in rows[i + 1 :]:
            if keys[a] & keys[b] and similarity(live[a], live[b]) >= THRESHOLD:
                ra, rb = find(a), find(b)
                parent[max(ra, rb)] = min(ra, rb)
    roots = {r: find(r) for r in rows}
    sizes: dict[int, int] = {}
    for g in roots.values():
        sizes[g] = sizes.get(g, 0) + 1
    return {r: g for r, g in roots.items() if sizes[g] > 1}


# ------------------------------------------------------------------ texts
@cache
def chain() -> dict[str, np.ndarray]:
    """A≈B≈C with A and C apart, and a close copy of each end: A2≈A, C2≈C, {A, A2} and {C, C2} apart."""
    rng = random.Random(11)
    for _ in range(500):
        a = _text(rng)
        b = _edit(a, rng, 3)
        c = _edit(b, rng, 3)
        a2, c2 = _edit(a, rng, 1), _edit(c, rng, 1)
        s = {"A": _sig(a), "A2": _sig(a2), "B": _sig(b), "C": _sig(c), "C2": _sig(c2)}
        linked = _edge(s["A"], s["B"]) and _edge(s["B"], s["C"]) and _edge(s["A"], s["A2"]) and _edge(s["C"], s["C2"])
        apart = not any(_edge(s[x], s[y]) for x in ("A", "A2") for y in ("C", "C2"))
        if linked and apart:
            return s
    raise AssertionError("no chain found; widen the search")


@cache
def family(seed: int, copies: int = 3) -> list[np.ndarray]:
    """An original and copies with 1–3 words changed, all pairwise duplicates."""
    rng = random.Random(seed)
    for _ in range(100):
        base = _text(rng)
        sigs = [_sig(base)] + [_sig(_edit(base, rng, rng.randint(1, 3))) for _ in range(copies - 1)]
        if all(_edge(x, y) for i, x in enumerate(sigs) for y in sigs[i + 1 :]):
            return sigs
    raise AssertionError("no family found")


@cache
def unrelated(seed: int) -> np.ndarray:
    return _sig(_text(random.Random(seed)))


@cache
def pool() -> list[np.ndarray]:
    """Texts for random updates: copy families, two chains, unrelated articles."""
    out: list[np.ndarray] = []
    for seed in range(4):
        out.extend(family(100 + seed))
    out.extend(chain().values())
    rng = random.Random(5)
    for _ in range(2):  # a second chain, more loosely linked than chain()'s
        a = _text(rng)
        b = _edit(a, rng, 4)
        out.extend([_sig(a), _sig(b), _sig(_edit(b, rng, 4))])
    out.extend(unrelated(200 + i) for i in range(6))
    return out


# ------------------------------------------------------------------ the fake store
class Store:
    """The old collection less the removed rows, answering like ``Store.band_articles``/``signatures``."""

    def __init__(self, live: dict[int, np.ndarray]) -> None:
        self.live = live
        self.key_calls: list[list[tuple[int, int]]] = []
        self.sig_calls: list[list[int]] = []
        self.answered: set[int] = set()

    def candidates(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
        self.key_calls.append(list(keys))
        wanted = set(keys)
        out: dict[tuple[int, int], list[int]] = {}
        for row, sig in sorted(self.live.items()):
            for k in _keys(sig) & wanted:
                out.setdefault(k, []).append(row)
        self.answered.update(r for rows in out.values() for r in rows)
        return out

    def signatures(self, rows: list[int]) -> dict[int, np.ndarray]:
        self.sig_calls.append(list(rows))
        return {r: self.live[r] for r in rows}


class Collection:
    """A collection updated through update_groups, checked against the reference after every update."""

    def __init__(self, *, strip_roots: bool = False) -> None:
        self.live: dict[int, np.ndarray] = {}
        self.groups: dict[int, int] = {}
        self.next_row = 1
        self.strip_roots = strip_roots
        self.store = Store({})

    def update(self, add: Sequence[np.ndarray] = (), remove: Sequence[int] = ()) -> dict[int, int]:
        added = {self.next_row + i: sig for i, sig in enumerate(add)}
        self.next_row += len(added)
        gone = set(remove)
        old = {r: s for r, s in self.live.items() if r not in gone}
        given = dict(self.groups)
        if self.strip_roots:  # regroup() leaves out each cluster's first row
            given = {r: g for r, g in given.items() if r != g}
        before = dict(given), {r: s.copy() for r, s in added.items()}, list(remove)
        self.store = store = Store(old)
        result = update_groups(given, added, remove, candidates=store.candidates, signatures=store.signatures)

        assert (given, list(remove)) == (before[0], before[2]), "inputs must not be mutated"
        assert all(np.array_equal(added[r], s) for r, s in before[1].items())
        self._check_work(store, added, gone)
        self.live = {**old, **added}
        assert result == reference(self.live)
        self.groups = result
        return result

    def _check_work(self, store: Store, added: dict[int, np.ndarray], gone: set[int]) -> None:
        """Band keys only of the added articles; signatures only of candidates and survivors of touched clusters."""
        assert len(store.key_calls) == (1 if added else 0), "candidates is called once, with a batch"
        assert len(store.sig_calls) <= 1, "signatures is called at most once, with a batch"
        new_keys = set().union(*(_keys(s) for s in added.values()))
        for call in store.key_calls:
            assert set(call) <= new_keys
        touched = {self.groups[r] for r in gone if r in self.groups}
        survivors = {r for r, g in self.groups.items() if g in touched and r not in gone}
        for call in store.sig_calls:
            assert set(call) <= store.answered | survivors
            assert not set(call) & (gone | set(added))


# ------------------------------------------------------------------ named cases
def test_removing_the_bridge_splits_the_chain() -> None:
    s = chain()
    c = Collection()
    assert c.update([s["A"], s["A2"], s["B"], s["C"], s["C2"]]) == dict.fromkeys(range(1, 6), 1)
    assert c.update(remove=[3]) == {1: 1, 2: 1, 4: 4, 5: 4}
    assert c.store.sig_calls == [[1, 2, 4, 5]]  # only the survivors of the broken cluster


def test_removing_a_chain_end_keeps_the_rest_together() -> None:
    s = chain()
    c = Collection()
    c.update([s["A"], s["B"], s["C"]])
    assert c.groups == {1: 1, 2: 1, 3: 1}
    assert c.update(remove=[3]) == {1: 1, 2: 1}


def test_adding_a_bridge_merges_two_clusters() -> None:
    s = chain()
    c = Collection()
    assert c.update([s["A"], s["A2"], s["C"], s["C2"]]) == {1: 1, 2: 1, 3: 3, 4: 3}
    assert c.update([s["B"]]) == dict.fromkeys(range(1, 6), 1)
    assert cluster_count(c.groups) == 1


def test_a_new_bridge_merging_clusters_relabels_all_members_to_the_smallest() -> None:
    s = chain()
    c = Collection()
    c.update([s["C"], s["C2"]])
    c.update([unrelated(1)])
    c.update([s["A"], s["A2"]])
    assert c.groups == {1: 1, 2: 1, 4: 4, 5: 4}
    assert c.update([s["B"]]) == {1: 1, 2: 1, 4: 1, 5: 1, 6: 1}


def test_removing_the_first_row_relabels_the_group() -> None:
    x = family(1)
    c = Collection()
    assert c.update(x) == {1: 1, 2: 1, 3: 1}
    assert c.update(remove=[1]) == {2: 2, 3: 2}


def test_removing_all_but_one_member_drops_the_cluster() -> None:
    x = family(2)
    c = Collection()
    c.update([*x, *family(3)])
    assert cluster_count(c.groups) == 2
    assert c.update(remove=[1, 3]) == {4: 4, 5: 4, 6: 4}
    assert c.update(remove=[5, 6]) == {}


def test_additions_and_removals_in_one_update() -> None:
    x, s = family(4, copies=4), chain()
    c = Collection()
    c.update([x[0], x[1], unrelated(2), s["A"], s["B"], s["C"]])
    assert c.groups == {1: 1, 2: 1, 4: 4, 5: 4, 6: 4}
    # the first row and the bridge go; a new copy joins the first cluster, a new bridge rejoins the chain
    assert c.update([x[2], s["B"], x[3]], remove=[1, 5]) == {2: 2, 7: 2, 9: 2, 4: 4, 6: 4, 8: 4}


def test_removing_a_singleton_or_adding_an_unrelated_article_reads_no_signatures() -> None:
    c = Collection()
    c.update([*family(5), unrelated(3)])
    c.update([unrelated(4)], remove=[4])
    assert c.store.sig_calls == []
    assert c.groups == {1: 1, 2: 1, 3: 1}


def test_maps_without_first_rows_as_regroup_writes_them_are_accepted() -> None:
    s = chain()
    c = Collection(strip_roots=True)
    c.update([s["A"], s["A2"], s["B"], s["C"], s["C2"]])
    assert c.update(remove=[1]) == {2: 2, 3: 2, 4: 2, 5: 2}
    assert c.update(remove=[3]) == {4: 4, 5: 4}


def test_removed_rows_in_a_stale_candidates_answer_are_ignored() -> None:
    x = family(6)
    groups = {1: 1, 2: 1}
    stale = Store({1: x[0], 2: x[1]})  # still answers with row 2, removed by this update
    result = update_groups(groups, {3: x[2]}, [2], candidates=stale.candidates, signatures=stale.signatures)
    assert result == {1: 1, 3: 1}


def test_adding_and_removing_one_row_is_refused() -> None:
    store = Store({})
    with pytest.raises(ValueError, match="same article row"):
        update_groups({}, {5: unrelated(5)}, [5], candidates=store.candidates, signatures=store.signatures)


# ------------------------------------------------------------------ random updates
@settings(max_examples=100, deadline=None, database=None)
@given(
    steps=st.lists(
        st.tuples(
            st.lists(st.integers(0, 10_000), max_size=7),  # pool indices to add
            st.lists(st.integers(0, 10_000), max_size=5),  # positions among the live rows to remove
        ),
        min_size=1,
        max_size=6,
    ),
    strip_roots=st.booleans(),
)
def test_random_updates_match_a_full_regroup(steps: list[tuple[list[int], list[int]]], strip_roots: bool) -> None:
    texts = pool()
    c = Collection(strip_roots=strip_roots)
    for adds, removes in steps:
        rows = sorted(c.live)
        remove = sorted({rows[i % len(rows)] for i in removes}) if rows else []
        c.update([texts[i % len(texts)] for i in adds], remove)


# ------------------------------------------------------------------ regroup agrees
class FakeWriter:
    """What regroup() reads from and writes to a segment writer."""

    def __init__(self, live: dict[int, np.ndarray]) -> None:
        self.live = live
        self.groups: dict[int, int] = {}

    def band_pairs(self) -> list[tuple[int, int]]:
        rows = sorted(self.live)
        keys = {r: _keys(self.live[r]) for r in rows}
        return [(a, b) for i, a in enumerate(rows) for b in rows[i + 1 :] if keys[a] & keys[b]]

    def signatures(self, rows: Sequence[int]) -> dict[int, np.ndarray]:
        return {r: self.live[r] for r in rows}

    def set_duplicate_groups(self, groups: dict[int, int]) -> None:
        self.groups = dict(groups)


def test_regroup_agrees_with_the_reference_and_update_groups_continues_from_it() -> None:
    s = chain()
    live = dict(enumerate([*family(7), s["A"], s["A2"], s["B"], s["C"], unrelated(6)], start=1))
    writer = FakeWriter(live)
    clusters = dedup.regroup(writer)
    expected = reference(live)
    # regroup leaves out each cluster's first row, which is its own group either way
    assert {**writer.groups, **{g: g for g in writer.groups.values()}} == expected
    assert clusters == cluster_count(expected) == 2

    store = Store({r: sig for r, sig in live.items() if r != 6})
    added = {10: s["C2"]}
    result = update_groups(writer.groups, added, [6], candidates=store.candidates, signatures=store.signatures)
    assert result == reference({**store.live, **added}) == {1: 1, 2: 1, 3: 1, 4: 4, 5: 4, 7: 7, 10: 7}
