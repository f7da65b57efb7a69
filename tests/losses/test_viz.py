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
