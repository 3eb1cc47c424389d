"""The progress hooks: select_model(progress=...) and _reporting.fit_progress."""

import numpy as np
import pytest

from gaussmix import GaussianMixture, select_model
from gaussmix._reporting import fit_progress


@pytest.fixture(scope="module")
def X():
    rng = np.random.RandomState(0)
    return np.vstack([rng.randn(60, 2), rng.randn(60, 2) + 6])


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_select_model_reports_every_cell_once(X, n_jobs):
    calls = []
    result = select_model(
        X, range(1, 4), ["full", "VII"], n_jobs=n_jobs, random_state=0,
        progress=lambda n_done, n_cells, row: calls.append((n_done, n_cells, row)),
    )
    assert [n_done for n_done, _, _ in calls] == list(range(1, 7))
    assert {n_cells for _, n_cells, _ in calls} == {6}
    reported = sorted((row["covariance_type"], row["n_components"]) for _, _, row in calls)
    assert reported == sorted((r["covariance_type"], r["n_components"]) for r in result.table)


def test_fit_progress_follows_every_start_and_iteration(X):
    events = []
    with fit_progress(lambda *event: events.append(event)):
        gmm = GaussianMixture(2, n_init=2, random_state=0).fit(X)
    starts = [init for event, init, _ in events if event == "start"]
    assert starts == [0, 1]
    ends = [(init, n_iter) for event, init, n_iter in events if event == "end"]
    assert len(ends) == 2 and gmm.n_iter_ in [n for _, n in ends]
    for init, n_iter in ends:
        iterations = [n for event, i, n in events if event == "iteration" and i == init]
        assert iterations == list(range(1, n_iter + 1))
    # Outside the block nothing is reported.
    events.clear()
    GaussianMixture(2, random_state=0).fit(X)
    assert events == []
