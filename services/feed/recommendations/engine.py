"""The recommender's maths: item-based collaborative filtering blended with popularity.

Why plain numpy/scipy sparse matrices (and not `implicit` or scikit-learn): the signals are
implicit (likes, follows, uses), the matrices are very sparse, and item-item cosine similarity
is two sparse products, which scipy does in compiled code; it explains itself (the item that
contributed most to a score is the reason we show), needs no training loop, no extra
dependency and no model file, and every step is vectorised: there is no Python loop over users
or items anywhere below.

Items are models, posts and people in one column space (models first, then posts, then
people), so "people who liked this post also follow this model" falls out of the same product:

    X   users x items, implicit feedback (like, follow: 1; usage: 0.5 * log1p(uses))
    S   items x items, cosine similarity of X's columns, pruned to each item's top neighbours
    R = X @ S                       collaborative score: people who liked what you liked
    score = (1 - w) * R / max(R_u) + w * popularity   on R's support and the popular items

Items the user already interacted with (liked, followed) and the user themself are left out;
the rest is ranked per user and per kind by a vectorised top-k (lexsort by row, then score).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

KINDS = ("model", "post", "person")
_PREFIX = {"model": "m:", "post": "p:", "person": "u:"}
# Each item keeps this many most similar items: bounds the density of R = X @ S.
NEIGHBOURS = 50
USAGE_WEIGHT = 0.5
POST_HALF_LIFE_DAYS = 3.0


@dataclass
class Signals:
    """Everything the recommender reads, as plain tuples of string ids."""

    model_likes: list[tuple[str, str]] = field(default_factory=list)  # (user, model)
    model_follows: list[tuple[str, str]] = field(default_factory=list)  # (user, model)
    model_usage: list[tuple[str, str, int]] = field(default_factory=list)  # (user, model, uses)
    post_likes: list[tuple[str, str]] = field(default_factory=list)  # (user, post)
    person_follows: list[tuple[str, str]] = field(default_factory=list)  # (follower, followee)
    # Posts that may be recommended: (post, model, replies, age in days).
    posts: list[tuple[str, str, int, float]] = field(default_factory=list)
    # Names for reasons, and the people who may be recommended (those with a name).
    model_names: dict[str, str] = field(default_factory=dict)
    people_names: dict[str, str] = field(default_factory=dict)
    post_models: dict[str, str] = field(default_factory=dict)


@dataclass
class Pick:
    id: str
    score: float
    reason: str
    # A reason naming a model says `{model}`: the read path writes the ref the caller sees.
    because_model: str | None = None


@dataclass
class Result:
    """Per user, per kind, the ranked picks; the popular picks; each item's similar items."""

    for_user: dict[str, dict[str, list[Pick]]]
    popular: dict[str, list[Pick]]
    similar: dict[str, list[Pick]]  # keyed "model:<id>" / "post:<id>"


def top_k_per_row(
    matrix: sp.spmatrix, k: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """(rows, cols, values) of each row's k largest positive entries, best first per row.

    One argsort over all entries: the key is the row number less the value scaled into
    [0, 0.5), so rows stay apart and each row's entries come largest first."""
    m = sp.csr_matrix(matrix)
    m.sort_indices()
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    cols, vals = m.indices.astype(np.int64), m.data.astype(np.float64)
    positive = vals > 0
    rows, cols, vals = rows[positive], cols[positive], vals[positive]
    if not len(vals):
        return rows, cols, vals
    order = np.argsort(rows - vals / (2.0 * vals.max()), kind="stable")
    rows, cols, vals = rows[order], cols[order], vals[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
    best = rank < k
    return rows[best], cols[best], vals[best]


def _matrix(
    rows: NDArray[np.int64],
    cols: NDArray[np.int64],
    vals: NDArray[np.float64],
    shape: tuple[int, int],
) -> sp.csr_matrix:
    # Duplicates (a like and a follow of one model) add up.
    return sp.csr_matrix((vals, (rows, cols)), shape=shape)


class _Space:
    """Users and items as row and column numbers."""

    def __init__(self, signals: Signals) -> None:
        s = signals
        self.users = np.unique(
            np.array(
                [u for u, _ in s.model_likes]
                + [u for u, _ in s.model_follows]
                + [u for u, _, _ in s.model_usage]
                + [u for u, _ in s.post_likes]
                + [u for u, _ in s.person_follows],
                dtype=object,
            ).astype(str)
        )
        models = {m for _, m in s.model_likes} | {m for _, m in s.model_follows}
        models |= {m for _, m, _ in s.model_usage} | set(s.model_names)
        posts = {p for _, p in s.post_likes} | {p for p, _, _, _ in s.posts}
        people = {f for _, f in s.person_follows} | set(s.people_names)
        self.keys = np.array(
            [_PREFIX["model"] + m for m in sorted(models)]
            + [_PREFIX["post"] + p for p in sorted(posts)]
            + [_PREFIX["person"] + u for u in sorted(people)]
        )
        self.bounds = {
            "model": (0, len(models)),
            "post": (len(models), len(models) + len(posts)),
            "person": (len(models) + len(posts), len(self.keys)),
        }
        self._user_index = {u: i for i, u in enumerate(self.users.tolist())}
        self._item_index = {k: i for i, k in enumerate(self.keys.tolist())}
        self._ids = [str(k).split(":", 1)[1] for k in self.keys.tolist()]
        self._kinds = [k for k, (lo, hi) in self.bounds.items() for _ in range(lo, hi)]

    def user_rows(self, ids: list[str]) -> NDArray[np.int64]:
        return np.array([self._user_index[u] for u in ids], dtype=np.int64)

    def item_cols(self, kind: str, ids: list[str]) -> NDArray[np.int64]:
        prefix = _PREFIX[kind]
        return np.array([self._item_index[prefix + i] for i in ids], dtype=np.int64)

    def item_col(self, kind: str, item: str) -> int | None:
        return self._item_index.get(_PREFIX[kind] + item)

    def kind_of(self, col: int) -> str:
        return self._kinds[col]

    def id_of(self, col: int) -> str:
        return self._ids[col]


def _feedback(space: _Space, s: Signals) -> sp.csr_matrix:
    shape = (len(space.users), len(space.keys))
    parts: list[tuple[list[str], str, list[str], NDArray[np.float64]]] = [
        ([u for u, _ in s.model_likes], "model", [m for _, m in s.model_likes],
         np.ones(len(s.model_likes))),
        ([u for u, _ in s.model_follows], "model", [m for _, m in s.model_follows],
         np.ones(len(s.model_follows))),
        ([u for u, _, _ in s.model_usage], "model", [m for _, m, _ in s.model_usage],
         USAGE_WEIGHT * np.log1p(np.array([n for _, _, n in s.model_usage], dtype=float))),
        ([u for u, _ in s.post_likes], "post", [p for _, p in s.post_likes],
         np.ones(len(s.post_likes))),
        ([u for u, _ in s.person_follows], "person", [f for _, f in s.person_follows],
         np.ones(len(s.person_follows))),
    ]  # fmt: skip
    rows = np.concatenate([space.user_rows(u) for u, _, _, _ in parts] + [np.zeros(0, np.int64)])
    cols = np.concatenate(
        [space.item_cols(kind, ids) for _, kind, ids, _ in parts] + [np.zeros(0, np.int64)]
    )
    vals = np.concatenate([v for _, _, _, v in parts] + [np.zeros(0)])
    return _matrix(rows, cols, vals, shape)


def _popularity(space: _Space, s: Signals, x: sp.csr_matrix) -> NDArray[np.float64]:
    """Per item, in [0, 1] within its kind: distinct people who liked, followed or used it;
    posts also count replies and fade with age (half-life POST_HALF_LIFE_DAYS)."""
    pop = np.asarray((x > 0).sum(axis=0), dtype=float).ravel()
    if s.posts:
        cols = space.item_cols("post", [p for p, _, _, _ in s.posts])
        replies = np.array([r for _, _, r, _ in s.posts], dtype=float)
        age = np.array([a for _, _, _, a in s.posts], dtype=float)
        pop[cols] = (pop[cols] + replies + 1.0) * 0.5 ** (age / POST_HALF_LIFE_DAYS)
    for lo, hi in space.bounds.values():
        if hi > lo and pop[lo:hi].max() > 0:
            pop[lo:hi] /= pop[lo:hi].max()
    return pop


def _candidates(space: _Space, s: Signals) -> NDArray[np.bool_]:
    """Items that may be shown: posts still listed, people with a name, every model (the
    read path checks that the caller may use it)."""
    ok = np.zeros(len(space.keys), dtype=bool)
    lo, hi = space.bounds["model"]
    ok[lo:hi] = True
    if s.posts:
        ok[space.item_cols("post", [p for p, _, _, _ in s.posts])] = True
    named = [u for u in s.people_names if space.item_col("person", u) is not None]
    if named:
        ok[space.item_cols("person", named)] = True
    return ok


def _similarity(x: sp.csr_matrix) -> sp.csr_matrix:
    """Cosine similarity of items (columns) over people, each item's top NEIGHBOURS kept."""
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    scale = sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0))
    xn = (x @ scale).tocsc()
    sim = (xn.T @ xn).tocsr()
    sim.setdiag(0)
    sim.eliminate_zeros()
    rows, cols, vals = top_k_per_row(sim, NEIGHBOURS)
    return _matrix(rows, cols, vals, sim.shape)


def _name(space: _Space, s: Signals, col: int) -> str:
    kind, item = space.kind_of(col), space.id_of(col)
    if kind == "model":
        return "{model}"
    if kind == "post":
        ref = s.model_names.get(s.post_models.get(item, ""))
        return f"a post by {ref}" if ref else "a post you liked"
    name = s.people_names.get(item)
    return f"@{name}" if name else "someone you follow"


def _reason(space: _Space, s: Signals, col: int, because: int | None) -> str:
    kind = space.kind_of(col)
    if because is None:
        return {
            "model": "Popular on llmnet.",
            "post": "Popular on llmnet right now.",
            "person": "Followed by many people on llmnet.",
        }[kind]
    verb = "follow" if space.kind_of(because) == "person" else "liked"
    return f"People who {verb} {_name(space, s, because)} also like this."


def recommend(signals: Signals, *, per_list: int, popularity_weight: float) -> Result:
    """Rank every kind for every user who left any signal, and the popular picks."""
    space = _Space(signals)
    n_users, n_items = len(space.users), len(space.keys)
    x = _feedback(space, signals) if n_users else sp.csr_matrix((0, n_items))
    pop = _popularity(space, signals, x) if n_items else np.zeros(0)
    shown = _candidates(space, signals)
    w = popularity_weight

    # Popular picks (also the cold-start lists).
    popular: dict[str, list[Pick]] = {}
    top_popular = np.zeros(0, dtype=np.int64)
    for kind, (lo, hi) in space.bounds.items():
        cols = np.arange(lo, hi)[shown[lo:hi] & (pop[lo:hi] > 0)]
        cols = cols[np.argsort(-pop[cols], kind="stable")][:per_list]
        popular[kind] = [
            Pick(space.id_of(c), float(pop[c]), _reason(space, signals, c, None)) for c in cols
        ]
        top_popular = np.concatenate([top_popular, cols])

    sim = _similarity(x) if n_users else sp.csr_matrix((n_items, n_items))
    cf = (x @ sim).tocsr()
    row_max = np.asarray(cf.max(axis=1).todense()).ravel() if n_users else np.zeros(0)
    cf = sp.diags(np.divide(1.0, row_max, out=np.zeros_like(row_max), where=row_max > 0)) @ cf
    support = (cf > 0).astype(float)
    fill = sp.csr_matrix(
        (
            np.ones(n_users * len(top_popular)),
            (np.repeat(np.arange(n_users), len(top_popular)), np.tile(top_popular, n_users)),
        ),
        shape=(n_users, n_items),
    )
    reach = support.maximum(fill)
    score = (1 - w) * cf + reach @ sp.diags(w * pop + 1e-9)
    # Leave out what each user already has, themself, and items that may not be shown.
    seen = (x > 0).astype(float)
    self_cols = [space.item_col("person", u) for u in space.users.tolist()]
    has_self = np.array([c is not None for c in self_cols], dtype=bool)
    me = sp.csr_matrix(
        (
            np.ones(int(has_self.sum())),
            (np.arange(n_users)[has_self], np.array([c for c in self_cols if c is not None])),
        ),
        shape=(n_users, n_items),
    )
    score = score - score.multiply(seen.maximum(me)) - score @ sp.diags((~shown).astype(float))
    score = sp.csr_matrix(score)
    score.eliminate_zeros()

    for_user: dict[str, dict[str, list[Pick]]] = {u: {k: [] for k in KINDS} for u in space.users}
    for kind, (lo, hi) in space.bounds.items():
        rows, cols, vals = top_k_per_row(score[:, lo:hi].tocsr(), per_list)
        cols = cols + lo
        if not len(rows):
            continue
        # The reason: the user's item that contributed most to the collaborative score.
        contrib = x[rows].multiply(sim[cols]).tocsr()
        best = np.asarray(contrib.argmax(axis=1)).ravel()
        has_cf = np.asarray(contrib.max(axis=1).todense()).ravel() > 0
        for r, c, v, b, h in zip(rows, cols, vals, best, has_cf, strict=True):
            because = int(b) if h else None
            reason = _reason(space, signals, int(c), because)
            model = space.id_of(because) if because is not None else None
            if because is None or space.kind_of(because) != "model":
                model = None
            pick = Pick(space.id_of(int(c)), float(v), reason, model)
            for_user[str(space.users[r])][kind].append(pick)

    # More like this: each model's and post's most similar items of its own kind.
    similar: dict[str, list[Pick]] = {}
    for kind in ("model", "post"):
        lo, hi = space.bounds[kind]
        block = sim[lo:hi, lo:hi] @ sp.diags(shown[lo:hi].astype(float))
        rows, cols, vals = top_k_per_row(sp.csr_matrix(block), per_list)
        text = f"Liked by the same people as this {kind}."
        for r, c, v in zip(rows, cols, vals, strict=True):
            key = f"{kind}:{space.id_of(int(r) + lo)}"
            similar.setdefault(key, []).append(Pick(space.id_of(int(c) + lo), float(v), text))
    return Result(for_user=for_user, popular=popular, similar=similar)
