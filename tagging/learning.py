"""Learning a tag from the owner's decisions: a linear probe or a fitted threshold on CLIP embeddings.

For a tag such as ``dog`` the owner has accepted some suggested photos
(positives) and rejected others (negatives). Once there are ``MIN_EACH`` of
each, ``fit`` learns a per-tag model over the photos' CLIP image embeddings
that ``predict`` turns into a probability that the tag applies. Two
candidates are measured on held-out decisions and the better one is kept:

``"probe"``
    L2-regularised logistic regression on the whole embedding, each class
    weighted to half the loss so that a tag with 40 rejections and 8
    acceptances is not learned as "always no".
``"threshold"``
    one cut on the cosine similarity to a single direction: the tag's CLIP
    text embedding when there is one, else the difference of the two class
    means. The cut maximises F1 on the training decisions; a logistic slope
    (``scale``) turns the distance from the cut into a probability.

Both are measured by stratified k-fold cross-validation: every decision is
predicted once by a model that never saw it, and the pooled predictions at
probability 0.5 give precision, recall and F1. The candidate with the higher
held-out F1 is kept (a tie keeps the threshold, the simpler model), refitted
on every decision, and carries its held-out figures so a tag's page can show
how well it predicts decisions it was not fitted on.

Regularisation of the probe. The loss is the class-balanced mean log-loss
plus ``lam / 2 * |w|^2`` with ``lam = spread / (n * s**2)``, where ``spread``
is the training rows' mean squared distance from their mean. That is the MAP
estimate under a Gaussian prior on ``w`` which, before any label is seen,
expects the probe's logits to vary by about ``s`` across the tag's photos: the
strength follows the embedding's scale (any CLIP model, any dimension) and
fades as ``1/n`` as decisions accumulate. With few decisions (fewer than
dimensions, so always separable) it keeps the weights finite and pulls them
towards the difference of class means, which is where infinitely strong
regularisation ends; the threshold candidate on that difference covers that
end. Which ``s`` suits a tag depends on how clean its decisions are and how
its concept sits in the embedding, so it is chosen from ``LOGIT_SDS`` by the
same held-out decisions (F1, then log-loss). On planted concepts (isotropic
and CLIP-like embeddings, 5 to 1,000 decisions a class, none or 10% of them
flipped), many noisy decisions wanted the strongest prior (up to 7 points of
F1 over a fixed ``s = 4``, which fits the flipped decisions in 512
dimensions) and few clean decisions of a concept off the embedding's main
axes the weakest (1 to 3 points); five values did no better than three.
Choosing among three on the folds that also give the reported figures makes
them slightly optimistic; nested cross-validation would cost five times as
much.

The probe is fitted by Newton's method without ever forming a Hessian (a
512 x 512 Gram of 2,000 rows per step would cost more than the whole fit):
each step is solved by conjugate gradients on Hessian-vector products. The
rows are first written in the eigenvectors of their weighted Gram ``X'CX``,
once for all folds, strengths and the final refit, which makes the
preconditioner (Böhning's bound ``H <= X'CX/4 + lam*I``, rescaled to the
current curvature) diagonal. Hessian-vector products run in float32, which
halves their memory traffic; gradients and the objective stay in float64.
2,000 decisions of 512 dimensions take 0.2 to 0.45 s of one core (OpenBLAS,
one thread), most of it when the classes overlap.

Pure numpy, no Django: the runner that loads decisions and stores the model
(``TagModel.as_dict`` into a JSONField) lives elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["MIN_EACH", "PROBE", "THRESHOLD", "TagModel", "fit", "predict"]

MIN_EACH = 5  # fewest accepted AND fewest rejected examples before a tag is learned

PROBE = "probe"
THRESHOLD = "threshold"
KINDS = (PROBE, THRESHOLD)

# The probe's prior spread of logits across a tag's photos, which sets its regularisation (module
# docstring); cross-validation picks one. Strongest first: each fit starts from the one before.
LOGIT_SDS = (1.0, 4.0, 16.0)

NEWTON_STEPS = 50  # at most; a fit usually converges in 5 to 10
GRADIENT_TOL = 1e-8  # on the gradient of the mean loss (max abs)
DECREMENT_TOL = 1e-6  # on the squared Newton decrement, -gradient @ step: twice the predicted decrease
CG_STEPS = 100  # at most, per Newton step
MIN_SCALE = 1e-6  # the threshold's slope stays positive, so p >= 0.5 exactly when sim >= cut


@dataclass
class TagModel:
    """A learned tag: what ``predict`` needs, and how well it did on held-out decisions."""

    kind: str  # PROBE or THRESHOLD
    weights: list[float]  # probe: one weight per dimension; threshold: the unit direction of the similarity
    bias: float  # probe: intercept; threshold: the cut on the similarity
    scale: float  # threshold: logistic slope on (similarity - cut); probe: 1.0
    precision: float  # held-out (cross-validated), at probability 0.5
    recall: float
    f1: float
    n_positive: int
    n_negative: int
    compared: dict  # {"probe": {"precision", "recall", "f1"}, "threshold": {...}}

    def as_dict(self) -> dict:
        """Plain Python types only: ``json.dumps`` works, and ``from_dict`` gives the same predictions."""
        return {
            "kind": self.kind,
            "weights": [float(w) for w in self.weights],
            "bias": float(self.bias),
            "scale": float(self.scale),
            "precision": float(self.precision),
            "recall": float(self.recall),
            "f1": float(self.f1),
            "n_positive": int(self.n_positive),
            "n_negative": int(self.n_negative),
            "compared": {
                kind: {name: float(value) for name, value in scores.items()}
                for kind, scores in self.compared.items()
            },
        }

    @classmethod
    def from_dict(cls, d: dict) -> TagModel:
        if d["kind"] not in KINDS:
            raise ValueError(f"unknown tag model kind {d['kind']!r} (expected one of {', '.join(KINDS)})")
        return cls(
            kind=d["kind"],
            weights=[float(w) for w in d["weights"]],
            bias=float(d["bias"]),
            scale=float(d["scale"]),
            precision=float(d["precision"]),
            recall=float(d["recall"]),
            f1=float(d["f1"]),
            n_positive=int(d["n_positive"]),
            n_negative=int(d["n_negative"]),
            compared={kind: dict(scores) for kind, scores in d["compared"].items()},
        )


def fit(
    positives: np.ndarray,
    negatives: np.ndarray,
    *,
    text_vector: np.ndarray | None = None,
    folds: int = 5,
    seed: int = 0,
) -> TagModel | None:
    """Learn a tag from accepted (``positives``) and rejected (``negatives``) embeddings, one per row.

    Returns None while either side has fewer than ``MIN_EACH`` rows. Rows are
    compared by cosine (each is L2-normalised here); any float dtype is
    accepted. ``text_vector`` is the tag's CLIP text embedding, the direction
    of the threshold candidate. Deterministic for a given ``seed`` (it only
    decides which decisions share a fold).
    """
    if len(positives) < MIN_EACH or len(negatives) < MIN_EACH:
        return None
    pos = _unit_rows(_matrix(positives, "positives"))
    neg = _unit_rows(_matrix(negatives, "negatives"))
    dim = pos.shape[1]
    if neg.shape[1] != dim:
        raise ValueError(f"positives have {dim} dimensions but negatives have {neg.shape[1]}")
    direction = None
    if text_vector is not None:
        direction = _unit_rows(_matrix(np.reshape(text_vector, (1, -1)), "text_vector"))[0]
        if direction.shape[0] != dim:
            raise ValueError(f"text_vector has {direction.shape[0]} dimensions but the embeddings have {dim}")
        if not direction.any():
            raise ValueError("text_vector is all zeros: it has no direction")

    X = np.vstack([pos, neg])
    t = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    k = max(2, min(folds, len(pos), len(neg)))
    fold_of = _stratified_folds(t, k, seed)

    held_out = np.empty(len(t))
    for f in range(k):
        train, test = fold_of != f, fold_of == f
        held_out[test] = _probability(THRESHOLD, *_fit_threshold(X[train], t[train], direction), X[test])
    probe = _ProbeFitter(X, t)
    logit_sd, probe_held_out = probe.cross_validate(fold_of, k)
    compared = {
        PROBE: _scores(t, probe_held_out >= 0.5),
        THRESHOLD: _scores(t, held_out >= 0.5),
    }

    kind = PROBE if compared[PROBE]["f1"] > compared[THRESHOLD]["f1"] else THRESHOLD
    if kind == PROBE:
        weights, bias = probe.fit(np.ones(len(t), dtype=bool), logit_sd)
        scale = 1.0
    else:
        weights, bias, scale = _fit_threshold(X, t, direction)
    return TagModel(
        kind=kind,
        weights=weights.tolist(),
        bias=float(bias),
        scale=float(scale),
        **compared[kind],
        n_positive=len(pos),
        n_negative=len(neg),
        compared=compared,
    )


def predict(model: TagModel, X: np.ndarray) -> np.ndarray:
    """The probability (float64, in [0, 1]) that the tag applies, one per row of ``X``."""
    rows = _matrix(X, "X")
    if rows.shape[1] != len(model.weights):
        raise ValueError(f"X has {rows.shape[1]} dimensions but the model has {len(model.weights)}")
    weights = np.asarray(model.weights, dtype=np.float64)
    return _probability(model.kind, weights, model.bias, model.scale, _unit_rows(rows))


# --- both candidates ----------------------------------------------------------------------


def _probability(kind: str, weights: np.ndarray, bias: float, scale: float, unit_rows: np.ndarray) -> np.ndarray:
    """The one prediction rule, used for held-out scores and by ``predict``."""
    if kind == PROBE:
        return _sigmoid(unit_rows @ weights + bias)
    if kind == THRESHOLD:
        return _sigmoid(scale * (unit_rows @ weights - bias))
    raise ValueError(f"unknown tag model kind {kind!r} (expected one of {', '.join(KINDS)})")


def _balanced_weights(t: np.ndarray) -> np.ndarray:
    """Per-example loss weights: each class sums to one half."""
    n_pos = t.sum()
    return np.where(t == 1, 0.5 / n_pos, 0.5 / (len(t) - n_pos))


def _stratified_folds(t: np.ndarray, k: int, seed: int) -> np.ndarray:
    """A fold number per example; each class is shuffled and dealt round-robin into ``k`` folds."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(t), dtype=np.int64)
    for label in (1, 0):
        members = rng.permutation(np.flatnonzero(t == label))
        fold_of[members] = np.arange(len(members)) % k
    return fold_of


def _scores(t: np.ndarray, predicted: np.ndarray) -> dict:
    """Precision, recall and F1 of the positive class; 0.0 where undefined (nothing predicted positive)."""
    tp = int(np.sum(predicted & (t == 1)))
    n_predicted, n_positive = int(predicted.sum()), int(np.sum(t == 1))
    precision = tp / n_predicted if n_predicted else 0.0
    recall = tp / n_positive if n_positive else 0.0
    f1 = 2 * tp / (n_predicted + n_positive) if n_predicted + n_positive else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


# --- the threshold ------------------------------------------------------------------------


def _fit_threshold(X: np.ndarray, t: np.ndarray, direction: np.ndarray | None):
    """(direction, cut, slope) on unit rows: the cut maximises F1, the slope fits probabilities."""
    if direction is None:
        difference = X[t == 1].mean(axis=0) - X[t == 0].mean(axis=0)
        direction = _unit_rows(difference[None, :])[0]
    similarity = X @ direction
    cut = _best_cut(similarity, t)
    return direction, cut, _fit_slope(similarity - cut, t)


def _best_cut(similarity: np.ndarray, t: np.ndarray) -> float:
    """The cut on ``similarity`` whose "at or above is positive" has the highest F1 on these examples.

    Candidates are the midpoints between neighbouring distinct values (and
    "everything positive"); ties keep the highest cut, the more precise one.
    """
    order = np.argsort(-similarity, kind="stable")
    ranked = similarity[order]
    true_positives = np.cumsum(t[order])
    n_called = np.arange(1, len(ranked) + 1)
    f1 = 2 * true_positives / (n_called + t.sum())
    # A cut can fall only between different values: the top k are called positive only if rank k differs from k+1.
    f1[:-1][ranked[:-1] == ranked[1:]] = -1.0
    k = int(np.argmax(f1))  # first maximum: the fewest called positive
    if k == len(ranked) - 1:
        return float(ranked[-1] - 1.0)  # everything positive: a cut below every cosine seen
    return float((ranked[k] + ranked[k + 1]) / 2)


def _fit_slope(margin: np.ndarray, t: np.ndarray) -> float:
    """Logistic slope ``a`` for p = sigmoid(a * margin), by class-balanced maximum likelihood.

    Targets are Platt's (1999) ``(n+ + 1)/(n+ + 2)`` and ``1/(n- + 2)``
    rather than 1 and 0, so a training set the cut separates perfectly still
    gets a finite slope. The loss is convex in ``a``: its derivative is found
    to be zero by bisection on ``log a``.
    """
    n_pos = t.sum()
    target = np.where(t == 1, (n_pos + 1) / (n_pos + 2), 1 / (len(t) - n_pos + 2))
    c = _balanced_weights(t)

    def derivative(a: float) -> float:
        return float(np.sum(c * (_sigmoid(a * margin) - target) * margin))

    low, high = math.log(MIN_SCALE), math.log(1e6)
    if derivative(math.exp(low)) >= 0:
        return MIN_SCALE  # the cut does not separate anything: no confidence
    if derivative(math.exp(high)) <= 0:
        return math.exp(high)
    for _ in range(60):
        middle = (low + high) / 2
        if derivative(math.exp(middle)) < 0:
            low = middle
        else:
            high = middle
    return math.exp((low + high) / 2)


# --- the probe ----------------------------------------------------------------------------


class _ProbeFitter:
    """Class-balanced, L2-regularised logistic regression on a fixed set of unit rows, for any subset.

    The rows are centred once on their class-balanced mean and written in the
    eigenvectors of their weighted Gram ``X'CX``. Both are only changes of
    coordinates: the intercept is not penalised, so centring does not change
    the fitted function, and the optimal weights always lie in the span of
    the (centred) rows, where the eigenvectors are an orthonormal basis, so
    the penalty is unchanged too. They make the problem smaller when there
    are fewer rows than dimensions, remove the large component that all CLIP
    embeddings share, and make the preconditioner diagonal. The basis is
    built once from every row; it sets only the speed of convergence, never
    the answer, so held-out rows in it leak nothing.

    Each fit starts from the nearest solution already found: the same
    strength on the previous fold (folds share most of their rows), else the
    previous, stronger, strength.
    """

    def __init__(self, X: np.ndarray, t: np.ndarray):
        self.X, self.t = X, t
        c = _balanced_weights(t)
        self.mean = c @ X
        self.eigenvalues, self.basis = _curvature_basis(X - self.mean, c)
        self.coordinates = (X - self.mean) @ self.basis
        self.squared_norms = np.einsum("ij,ij->i", self.coordinates, self.coordinates)
        self.solutions: dict[float, np.ndarray] = {}
        self.latest = np.zeros(self.basis.shape[1] + 1)

    def cross_validate(self, fold_of: np.ndarray, k: int):
        """(logit_sd, held-out probabilities) for the strength in ``LOGIT_SDS`` that predicts best.

        Best is the highest F1 at probability 0.5 over the pooled held-out
        predictions; ties go to the lower held-out log-loss, then to the
        stronger regularisation.
        """
        held_out = np.empty((len(LOGIT_SDS), len(self.t)))
        for f in range(k):
            train, test = fold_of != f, fold_of == f
            problem = self._problem(train)
            for i, logit_sd in enumerate(LOGIT_SDS):
                weights, bias = self._solve(problem, logit_sd)
                held_out[i, test] = _probability(PROBE, weights, bias, 1.0, self.X[test])

        def merit(i: int):
            p = np.clip(held_out[i], 1e-15, 1 - 1e-15)
            log_loss = -_balanced_weights(self.t) @ np.where(self.t == 1, np.log(p), np.log1p(-p))
            return _scores(self.t, held_out[i] >= 0.5)["f1"], -log_loss, -i

        best = max(range(len(LOGIT_SDS)), key=merit)
        return LOGIT_SDS[best], held_out[best]

    def fit(self, rows: np.ndarray, logit_sd: float):
        """(weights, bias) for raw unit rows, fitted on the rows selected by the boolean mask ``rows``."""
        return self._solve(self._problem(rows), logit_sd)

    def _problem(self, rows: np.ndarray) -> _Problem:
        X, t = self.coordinates[rows], self.t[rows]
        c = _balanced_weights(t)
        mean = c @ X
        spread = max(float(c @ self.squared_norms[rows] - mean @ mean), 1e-12)  # c sums to 1
        return _Problem(X, X.astype(np.float32), t, c, spread, self.eigenvalues)

    def _solve(self, problem: _Problem, logit_sd: float):
        lam = problem.spread / (len(problem.t) * logit_sd**2)
        start = self.solutions.get(logit_sd, self.latest)
        theta = _newton(problem, lam, start)
        self.solutions[logit_sd] = self.latest = theta
        weights = self.basis @ theta[:-1]
        return weights, float(theta[-1] - weights @ self.mean)


@dataclass
class _Problem:
    """One training set for the probe, in the eigenbasis coordinates (see ``_ProbeFitter``)."""

    X: np.ndarray
    X32: np.ndarray  # for Hessian-vector products, which need no more precision: half the memory traffic
    t: np.ndarray
    c: np.ndarray  # class-balanced loss weights
    spread: float  # weighted mean squared distance of the rows from their mean
    eigenvalues: np.ndarray  # of X'CX over every row: the columns of X are (nearly) its eigenvectors


def _curvature_basis(X: np.ndarray, c: np.ndarray):
    """Non-zero eigenvalues and orthonormal eigenvectors (columns) of X'CX, from whichever Gram is smaller."""
    A = X * np.sqrt(c)[:, None]
    n, d = A.shape
    if n >= d:
        values, vectors = np.linalg.eigh(A.T @ A)
        keep = values > values.max() * 1e-12
        return values[keep], vectors[:, keep]
    values, U = np.linalg.eigh(A @ A.T)
    keep = values > values.max() * 1e-12
    return values[keep], (A.T @ U[:, keep]) / np.sqrt(values[keep])


def _newton(problem: _Problem, lam: float, theta: np.ndarray) -> np.ndarray:
    """Minimise sum(c * logloss) + lam/2 |w|^2 over theta = (w, b): truncated Newton with a line search.

    Each Newton step is solved by conjugate gradients on Hessian-vector
    products, never forming the Hessian, preconditioned with the diagonal
    matrix ``[a * eigenvalues + lam, a]`` where ``a`` is the current mean
    curvature ``sum(c * p * (1 - p))`` (at most 1/4: Böhning's bound).
    """
    X, X32, t, c, eigenvalues = problem.X, problem.X32, problem.t, problem.c, problem.eigenvalues
    y = 2 * t - 1

    def margins(theta):
        return X @ theta[:-1] + theta[-1]

    def objective(theta, z):
        return float(c @ np.logaddexp(0, -y * z)) + lam / 2 * float(theta[:-1] @ theta[:-1])

    theta = theta.copy()
    z = margins(theta)
    value = objective(theta, z)
    for _ in range(NEWTON_STEPS):
        p = _sigmoid(z)
        r = c * (p - t)
        gradient = np.append(X.T @ r + lam * theta[:-1], r.sum())
        size = float(np.max(np.abs(gradient)))
        if size < GRADIENT_TOL:
            break
        curvature = c * p * (1 - p)
        a = max(float(curvature.sum()), 1e-12)
        inverse_diagonal = 1 / np.append(a * eigenvalues + lam, a)
        curvature32 = curvature.astype(np.float32)

        def hessian_times(v, curvature32=curvature32):
            u = curvature32 * (X32 @ v[:-1].astype(np.float32) + np.float32(v[-1]))
            return np.append(X32.T @ u + lam * v[:-1], u.sum(dtype=np.float64))

        step = _conjugate_gradient(hessian_times, -gradient, inverse_diagonal, tol=min(0.5, math.sqrt(size)))
        slope = float(gradient @ step)
        length = 1.0
        for _ in range(40):  # Armijo backtracking; a Newton step of length 1 is almost always taken
            candidate = theta + length * step
            z_candidate = margins(candidate)
            value_candidate = objective(candidate, z_candidate)
            if value_candidate <= value + 1e-4 * length * slope:
                break
            length /= 2
        else:
            break  # no decrease left at double precision: converged as far as it can
        theta, z, value = candidate, z_candidate, value_candidate
        if length == 1.0 and -slope < DECREMENT_TOL:
            break  # a full Newton step this small leaves an objective gap of about its square
    return theta


def _conjugate_gradient(apply_a, b, inverse_diagonal, *, tol: float) -> np.ndarray:
    """Solve A x = b (A symmetric positive definite) to relative residual ``tol``, diagonally preconditioned."""
    x = np.zeros_like(b)
    r = b.copy()
    z = inverse_diagonal * r
    p = z.copy()
    rz = float(r @ z)
    target = tol * float(np.linalg.norm(b))
    for _ in range(CG_STEPS):
        Ap = apply_a(p)
        along = float(p @ Ap)
        if along <= 0:  # only by rounding (A is positive definite): keep what has been solved so far
            return x if x.any() else z
        alpha = rz / along
        x += alpha * p
        r -= alpha * Ap
        if float(np.linalg.norm(r)) <= target:
            break
        z = inverse_diagonal * r
        rz, rz_old = float(r @ z), rz
        p = z + (rz / rz_old) * p
    return x


# --- arrays -------------------------------------------------------------------------------


def _matrix(X, name: str) -> np.ndarray:
    """A finite float64 matrix, one embedding per row."""
    rows = np.asarray(X, dtype=np.float64)
    if rows.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, one embedding per row (got shape {rows.shape})")
    if not np.all(np.isfinite(rows)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return rows


def _unit_rows(X: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (an all-zero row stays zero)."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0, -z))
