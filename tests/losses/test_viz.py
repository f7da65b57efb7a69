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
