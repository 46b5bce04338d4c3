"""The GRPO stage of a run, redone with plain Tunix: ``GRPOLearner`` with Tunix's own loss
(``tunix.rl.algo_core.grpo_loss_fn``, full-vocabulary logits), Tunix's ``RLCluster`` and its
inference worker, and a reference that is a full ``nnx.clone`` of the policy — none of
reasonlab's GRPO changes (lean log-probs, shared backbone, remat, anchor drop, metric glue).

    python studies/plain_tunix_grpo.py RUN_AFTER_SFT DEST [--stage grpo] [--kl k1|k2|k3]

What it shares with reasonlab, so that the two can be compared: the model loading and the
SFT checkpoint (``load_run_model``), the prompts and their order (the stage's own data
helpers), the optimiser settings, the sampler settings, the seeds, and the rewards as
plain functions (Tunix adds reward functions unweighted, so a weight becomes a scaled
copy). DEST is a branch of the run (``studies/branch.py``) whose GRPO stage ends up
"done", so ``reasonlab eval DEST`` evaluates what plain Tunix trained.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from branch import branch  # noqa: E402

from reasonlab_plugins.stage_grpo import KL_LOSS_MODES  # noqa: E402  (light: no JAX at import)


def weighted(fn, weight):
    def scaled(prompts, completions, **columns):
        return [weight * s for s in fn(prompts, completions, **columns)]

    scaled.__name__ = f"{getattr(fn, '__name__', 'reward')}_x{weight:g}"
    return scaled


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run whose stages before --stage have finished")
    parser.add_argument("dest", type=Path)
    parser.add_argument("--stage", default="grpo")
    parser.add_argument("--kl", choices=sorted(KL_LOSS_MODES), help="KL estimator (default: the recipe's)")
    parser.add_argument("--beta", type=float, help="KL weight (default: the recipe's)")
    args = parser.parse_args(argv)

    from reasonlab import xla_defaults

    xla_defaults.apply()

    import optax
    from flax import nnx
    from tunix.rl import rl_cluster as rl_cluster_lib
    from tunix.rl.grpo import grpo_learner
    from tunix.rl.rollout import base_rollout

    from reasonlab.data import load_rows
    from reasonlab.modeling import save_trainable, single_device_mesh
    from reasonlab.plugins import get_plugins
    from reasonlab.recipe import load_recipe
    from reasonlab.runs import load_run_model
    from reasonlab_plugins.stage_grpo import prompt_records, training_batches

    plugins = get_plugins()
    source = load_recipe(args.run / "recipe.toml", plugins=plugins)
    index, spec = next((i, s) for i, s in enumerate(source.stages) if s.name == args.stage)
    previous = [s.name for s in source.stages[:index] if s.enabled]
    settings = ([f'{args.stage}.kl_estimator="{args.kl}"'] if args.kl else []) + \
        ([f"{args.stage}.beta={args.beta}"] if args.beta is not None else [])
    dest = branch(args.run, args.dest, [args.stage], settings)
    recipe = load_recipe(dest / "recipe.toml", plugins=plugins)
    cfg = recipe.stages[index].config
    _, bundle, _ = load_run_model(args.run, plugins, previous[-1])

    rows = load_rows(cfg.data, plugins)
    records = prompt_records(rows, cfg, bundle.tokenizer).kept
    seed = recipe.info.seed + index  # the runner's per-stage seed
    rewards = plugins.registry("rewards")
    reward_fns = [weighted(rewards.get(r.name), r.weight) for r in cfg.rewards]

    schedule = optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, max(int(cfg.steps * cfg.warmup_ratio), 1),
                                                  max(cfg.steps, 2), cfg.learning_rate * 0.1)
    optimizer = optax.adamw(schedule, b1=0.9, b2=0.99, weight_decay=0.1)
    if cfg.max_grad_norm:
        optimizer = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optimizer)
    mesh = single_device_mesh()
    role = rl_cluster_lib.Role
    cluster = rl_cluster_lib.RLCluster(
        actor=bundle.model, reference=nnx.clone(bundle.model), tokenizer=bundle.tokenizer,
        cluster_config=rl_cluster_lib.ClusterConfig(
            role_to_mesh={role.ACTOR: mesh, role.REFERENCE: mesh, role.ROLLOUT: mesh},
            rollout_engine="vanilla", offload_to_cpu=False,
            training_config=rl_cluster_lib.RLTrainingConfig(
                actor_optimizer=optimizer, eval_every_n_steps=cfg.steps + 1, max_steps=cfg.steps),
            rollout_config=base_rollout.RolloutConfig(
                max_tokens_to_generate=cfg.max_completion_tokens, max_prompt_length=cfg.max_prompt_tokens,
                kv_cache_size=cfg.max_prompt_tokens + cfg.max_completion_tokens + 8,
                temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p,
                eos_tokens=bundle.stop_ids or None, seed=seed)))
    learner = grpo_learner.GRPOLearner(
        rl_cluster=cluster, reward_fns=reward_fns,
        algo_config=grpo_learner.GRPOConfig(num_generations=cfg.num_generations, num_iterations=1, beta=cfg.beta,
                                            epsilon=cfg.epsilon, kl_loss_mode=KL_LOSS_MODES[cfg.kl_estimator]))
    start = time.perf_counter()
    with mesh:
        learner.train(training_batches(records, cfg, seed))
    seconds = time.perf_counter() - start
    bundle.model = cluster.actor_trainer.model
    stage_dir = dest / "stages" / args.stage
    stage_dir.mkdir(parents=True, exist_ok=True)
    save_trainable(bundle, stage_dir / "final")
    state = json.loads((dest / "state.json").read_text())
    state["stages"][args.stage] = {"status": "done", "metrics": {"steps": float(cluster.actor_trainer.train_steps)},
                                   "trained_by": "studies/plain_tunix_grpo.py", "seconds": seconds}
    state["status"] = "done"
    (dest / "state.json").write_text(json.dumps(state, indent=2))
    print(f"plain Tunix GRPO: {cluster.actor_trainer.train_steps} steps in {seconds:.0f} s -> {dest}")


if __name__ == "__main__":
    main()
