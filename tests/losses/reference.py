"""Straightforward numpy/loop versions of the spec's formulas, written independently of
otzoo.losses, used as oracles by the tests."""
import math

import numpy as np


def normalize(x):
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def lse(values):
    values = [v for v in values if v != -math.inf]
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def stacked_S(z1, z2):
    z = normalize(np.concatenate([z1, z2]))
    return z @ z.T


def pos(i, n):
    return (i + n // 2) % n


def masked(mat):
    out = np.array(mat, dtype=np.float64)
    np.fill_diagonal(out, -math.inf)
    return out


def sinkhorn(ell, half_steps, loga=0.0, logb=0.0, k1=1.0, k2=1.0, f0=0.0, g0=0.0):
    n, m = ell.shape
    f, g = [f0] * n, [g0] * m
    for s in range(half_steps):
        if s % 2 == 0:
            f = [k1 * (loga - lse([ell[i, j] + g[j] for j in range(m)])) for i in range(n)]
        else:
            g = [k2 * (logb - lse([ell[i, j] + f[i] for i in range(n)])) for j in range(m)]
    return np.array(f), np.array(g)


def simclr(z1, z2, tau):
    s = masked(stacked_S(z1, z2) / tau)
    n = len(s)
    return sum(lse(s[i]) - s[i, pos(i, n)] for i in range(n)) / n


def rince(z1, z2, tau, q, lam):
    s = masked(stacked_S(z1, z2) / tau)
    n = len(s)
    tot = 0.0
    for i in range(n):
        neg_mass = sum(math.exp(s[i, j]) for j in range(n) if j != i)
        tot += -math.exp(q * s[i, pos(i, n)]) / q + (lam * neg_mass) ** q / q
    return tot / n


def gca_ince(z1, z2, eps, iters, target=None):
    ell = masked(-(1 - stacked_S(z1, z2)) / eps)
    n = len(ell)
    f, g = sinkhorn(ell, 2 * iters)
    logp = ell + f[:, None] + g[None, :]
    if target is None:
        return -sum(logp[i, pos(i, n)] for i in range(n)) / n
    return -sum(target[i, j] * logp[i, j] for i in range(n) for j in range(n) if target[i, j] > 0) / n


def gca_rince(z1, z2, eps, iters, q, lam):
    ell = masked(stacked_S(z1, z2) / eps)
    n = len(ell)
    _, g = sinkhorn(ell, 2 * iters)
    tot = 0.0
    for i in range(n):
        w = [math.exp(ell[i, j] + g[j]) for j in range(n)]
        tot += -w[pos(i, n)] ** q / q + (lam * sum(w)) ** q / q
    return tot / n


def gca_uot(z1, z2, eps, iters, rho1, rho2, q, lam, r1, r2, target=None):
    ell = masked(-(1 - stacked_S(z1, z2)) / eps)
    n = len(ell)
    la = math.log(1 / n)
    f, g = sinkhorn(ell, 2 * iters, la, la, rho1 / (rho1 + eps), rho2 / (rho2 + eps), la, la)
    logp = ell + f[:, None] + g[None, :]
    t1 = 0.0
    t2 = 0.0
    for i in range(n):
        row = lse(logp[i])
        if target is None:
            t1 += row - logp[i, pos(i, n)]
        else:
            t1 -= sum(target[i, j] * (logp[i, j] - row) for j in range(n) if target[i, j] > 0)
        t2 += (-math.exp(q * (ell[i, pos(i, n)] + g[pos(i, n)])) / q
               + math.exp(q * (math.log(lam) - f[i])) / q)
    return r1 * t1 / n + r2 * t2 / n


def iot_log_plan(z1, z2, eps, constraint, iters):
    ell = masked(-(1 - stacked_S(z1, z2)) / eps)
    n = len(ell)
    if constraint == "u1":
        tot = lse([ell[i, j] for i in range(n) for j in range(n)])
        return ell - tot + math.log(n)
    if constraint == "ua":
        return np.array([[ell[i, j] - lse(ell[i]) for j in range(n)] for i in range(n)])
    f, g = sinkhorn(ell, 2 * iters)
    return ell + f[:, None] + g[None, :]


def iot(z1, z2, eps, constraint, iters):
    logp = iot_log_plan(z1, z2, eps, constraint, iters)
    n = len(logp)
    val = -sum(logp[i, pos(i, n)] for i in range(n)) / n
    return val + (math.log(n) if constraint == "u1" else 0.0)


def iot_uni(z1, z2, eps, constraint, iters, lambda_p):
    logp = iot_log_plan(z1, z2, eps, constraint, iters)
    n = len(logp)
    negs = [(i, j) for i in range(n) for j in range(n) if j != i and j != pos(i, n)]
    m = sum(math.exp(logp[i, j]) for i, j in negs) / len(negs)
    kl = sum(m * (math.log(m) - logp[i, j]) for i, j in negs) / n
    return iot(z1, z2, eps, constraint, iters) + lambda_p * kl


def cross_cost(x, y):
    x, y = normalize(x), normalize(y)
    return np.array([[np.sum((x[i] - y[j]) ** 2) for j in range(len(y))] for i in range(len(x))])


def ot_plan(c, eps, iters):
    b = len(c)
    ell = -c / eps
    f, g = sinkhorn(ell, 2 * iters, math.log(1 / b), math.log(1 / b))
    return np.exp(ell + f[:, None] + g[None, :])


def sinsim(z1, z2, h1, h2, tau, beta, epsilon_h, iters):
    eps_h = epsilon_h
    c = cross_cost(h1, h2)
    p = ot_plan(c, eps_h, iters)
    w = np.sum(p * c) + eps_h * np.sum(p * np.log(p))
    return simclr(z1, z2, tau) + beta * w


def matching_gap(z1, z2, eps, iters):
    c = cross_cost(z1, z2)
    b = len(c)
    p = ot_plan(c, eps, iters)
    return np.trace(c) / b - (np.sum(p * c) + eps * np.sum(p * np.log(p))) - eps * math.log(b)


def _sym_infonce(x, y, tau):
    logits = x @ y.T / tau
    b = len(x)
    rows = sum(lse(logits[i]) - logits[i, i] for i in range(b)) / b
    cols = sum(lse(logits[:, j]) - logits[j, j] for j in range(b)) / b
    return 0.5 * (rows + cols)


def otco(z1, z2, tau, eps, iters):
    v, t = normalize(z1), normalize(z2)
    b = len(v)
    sigma = ot_plan(1 - v @ t.T, eps, iters)
    v2 = normalize(b * sigma @ t)
    t2 = normalize(b * sigma.T @ v)
    return (_sym_infonce(v, t, tau) + _sym_infonce(v2, t, tau) + _sym_infonce(v, t2, tau)) / 3


def byol(p1, p2, t1, t2):
    p1, p2, t1, t2 = map(normalize, (p1, p2, t1, t2))
    return np.mean(2 - 2 * np.sum(p1 * t2, 1)) + np.mean(2 - 2 * np.sum(p2 * t1, 1))
