import pytest
import torch

from otzoo.losses import create_loss


def test_plot_plan_draws_the_plan():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from otzoo.viz import plot_plan

    z1, z2 = torch.randn(4, 3), torch.randn(4, 3)
    plan = create_loss("gca_ince").plan(z1, z2)
    fig, axes = plt.subplots(1, 2)
    im = plot_plan(plan, ax=axes[0], title="gca_ince")
    assert axes[0].get_title() == "gca_ince"
    torch.testing.assert_close(torch.as_tensor(im.get_array().data, dtype=torch.float32), plan)
    im = plot_plan(plan, ax=axes[1], log=True, colorbar=False)
    assert im.get_array().mask[0, 0]  # the masked diagonal is blank in log scale
    plt.close(fig)
    with pytest.raises(ValueError, match="2-D"):
        plot_plan(torch.ones(3))


def test_plot_plan_defaults_name_the_plan_and_mark_positives_and_classes():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from otzoo.viz import plot_plan

    plan = create_loss("gca_uot").plan(torch.randn(6, 3), torch.randn(6, 3))
    fig, ax = plt.subplots()
    plot_plan(plan, ax=ax, log=True, labels=[0, 0, 1, 1, 1, 2], layout="stacked")
    assert ax.get_title() == "coupling P (12 x 12)"
    assert fig.axes[-1].get_ylabel() == r"$\log_{10} P_{ij}$"  # the colorbar, in mathtext
    dotted = [l for l in ax.get_lines() if l.get_linestyle() == ":"]
    assert [list(l.get_xdata()) for l in dotted] == [list(range(6, 12)), list(range(6))]  # (k, k+B), (k+B, k)
    class_lines = [l for l in ax.get_lines() if l.get_linewidth() == 0.3]
    assert len(class_lines) == 2 * 2 * 2  # 2 class changes x 2 views x (row + column)
    plt.close(fig)


def test_cross_view_plans_mark_the_diagonal_not_a_view_split():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from otzoo.viz import plot_plan

    loss = create_loss("otco")
    plan = loss.plan(torch.randn(6, 3), torch.randn(6, 3))  # (B, B) with B even: not two stacked views
    fig, ax = plt.subplots()
    plot_plan(plan, ax=ax, labels=[0, 0, 1, 1, 1, 2], layout=loss.plan_layout)
    dotted = [l for l in ax.get_lines() if l.get_linestyle() == ":"]
    assert [list(l.get_xdata()) for l in dotted] == [list(range(6))]
    assert [list(l.get_ydata()) for l in dotted] == [list(range(6))]
    assert not [l for l in ax.get_lines() if l.get_linewidth() == 0.8 and l.get_linestyle() == "-"]  # no view split
    assert len([l for l in ax.get_lines() if l.get_linewidth() == 0.3]) == 2 * 2  # 2 class changes x (row + column)
    assert (ax.get_ylabel(), ax.get_xlabel()) == ("i (view 1)", "j (view 2)")
    plot_plan(plan, ax=ax, layout=None)  # no layout: nothing marked, any shape
    with pytest.raises(ValueError, match="plan_layout"):
        plot_plan(torch.ones(3, 4), layout="stacked")
    with pytest.raises(ValueError, match="layout must be one of"):
        plot_plan(plan, layout="diagonal")
    plt.close(fig)


@pytest.mark.parametrize("layout,n", [("stacked", 12), ("cross_view", 6)])
def test_plan_mass_of_a_uniform_plan_is_the_uniform_share(layout, n):
    from otzoo.viz import plan_mass

    plan = torch.ones(n, n)
    if layout == "stacked":
        plan.fill_diagonal_(0)
    labels = [0, 0, 1, 1, 1, 2]
    mass = plan_mass(plan, layout, labels)
    assert mass["positives"] == pytest.approx(mass["positives_uniform"])
    assert mass["same_class"] == pytest.approx(mass["same_class_uniform"])
    # by hand: stacked 12 x 12 off-diagonal = 132 entries, 12 positives, 2*(2*2+3*3+1)*4 - 12 same-class
    expected = {"stacked": (12 / 132, (4 * 14 - 12) / 132), "cross_view": (6 / 36, 14 / 36)}[layout]
    assert (mass["positives_uniform"], mass["same_class_uniform"]) == pytest.approx(expected)


@pytest.mark.parametrize("method", ["gca_uot", "otco"])
def test_plan_mass_sees_a_plan_that_matches_the_positives(method):
    from otzoo.viz import plan_mass

    loss = create_loss(method)
    z = torch.randn(8, 16)
    matched = plan_mass(loss.plan(z, z + 0.01 * torch.randn(8, 16)), loss.plan_layout)
    unrelated = plan_mass(loss.plan(z, torch.randn(8, 16)), loss.plan_layout)
    assert matched["positives"] > 3 * matched["positives_uniform"]
    assert unrelated["positives"] < 2 * unrelated["positives_uniform"] < matched["positives"]
    assert "same_class" not in matched  # no labels, no class blocks


def test_plan_mass_rejects_what_it_cannot_read():
    from otzoo.viz import plan_mass

    with pytest.raises(ValueError, match="plan_layout"):
        plan_mass(torch.ones(4, 4), None)
    with pytest.raises(ValueError, match="one class per image"):
        plan_mass(torch.ones(4, 4), "stacked", labels=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="even size"):
        plan_mass(torch.ones(3, 3), "stacked")
