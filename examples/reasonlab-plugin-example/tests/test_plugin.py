from reasonlab.plugins import PluginSystem

from reasonlab_plugin_example import plugin


def test_brevity_scores():
    short = "<reasoning>2 + 2 = 4</reasoning><answer>4</answer>"
    long = "<reasoning>" + "word " * 90 + "</reasoning><answer>4</answer>"
    assert plugin.brevity(["q"] * 3, [short, long, "4"], max_words=60) == [1.0, 0.5, 0.0]


def test_registers_through_the_hooks():
    system = PluginSystem()
    system.register_plugin(plugin, name="example")
    assert system.registry("rewards").get("brevity") is plugin.brevity
    assert system.registry("losses").get("label_smoothed_ce") is plugin.label_smoothed_ce


def test_loss_is_finite_and_smoothing_raises_it():
    import jax.numpy as jnp
    import numpy as np

    class Toy:
        def __call__(self, tokens, positions, cache, mask):
            return jnp.eye(8)[(tokens + 1) % 8] * 5.0, None  # confidently predicts the next token

    tokens = jnp.array([[1, 2, 3, 4]])
    mask = jnp.array([[0, 1, 1, 1]])
    plain = plugin.label_smoothed_ce(Toy(), tokens, mask, None, None, smoothing=0.0)
    smooth = plugin.label_smoothed_ce(Toy(), tokens, mask, None, None, smoothing=0.1)
    assert np.isfinite(float(plain)) and float(smooth) > float(plain)
