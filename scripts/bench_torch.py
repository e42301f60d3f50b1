"""The bench of `scripts/bench.ts` with the reference implementation: diffusers' SanaTransformer2DModel,
AdamW, DPMSolverMultistepScheduler and AutoencoderDC in PyTorch on the CPU, printing the same JSON fields.

    python scripts/bench_torch.py [--steps 10] [--threads 2]

Needs torch and diffusers (any recent release with SANA support). OpenBLAS starts its own threads next
to torch's and oversubscribes a small machine, so its pool is pinned to one thread before torch loads.
"""
import argparse
import json
import os
import resource
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402
from diffusers import AutoencoderDC, DPMSolverMultistepScheduler, SanaTransformer2DModel  # noqa: E402

# Same numbers as BENCH_TRANSFORMER / BENCH_AUTOENCODER in scripts/bench.ts.
TRANSFORMER = dict(
    in_channels=32,
    out_channels=32,
    num_attention_heads=8,
    attention_head_dim=32,
    num_layers=4,
    num_cross_attention_heads=8,
    cross_attention_head_dim=32,
    cross_attention_dim=256,
    caption_channels=2304,
    mlp_ratio=2.5,
    sample_size=16,
    patch_size=1,
)
AUTOENCODER = dict(
    in_channels=3,
    latent_channels=32,
    attention_head_dim=8,
    encoder_block_types=["ResBlock"] * 3 + ["EfficientViTBlock"] * 3,
    decoder_block_types=["ResBlock"] * 3 + ["EfficientViTBlock"] * 3,
    encoder_block_out_channels=[8, 16, 32, 32, 64, 64],
    decoder_block_out_channels=[8, 16, 32, 32, 64, 64],
    encoder_layers_per_block=[1] * 6,
    decoder_layers_per_block=[1] * 6,
    encoder_qkv_multiscales=[[], [], [], [5], [5], [5]],
    decoder_qkv_multiscales=[[], [], [], [5], [5], [5]],
    upsample_block_type="interpolate",
    downsample_block_type="conv",
    decoder_norm_types="rms_norm",
    decoder_act_fns="silu",
    scaling_factor=0.41407,
)
BATCH, LATENT, TEXT_TOKENS = 4, 16, 32
TEXT_LENGTHS = [32, 20, 9, 27]
SAMPLING_STEPS, GUIDANCE_SCALE = 20, 4.5


def time_it(f, min_seconds, min_runs=1):
    f()
    runs, t0 = 0, time.perf_counter()
    while runs < min_runs or time.perf_counter() - t0 < min_seconds:
        f()
        runs += 1
    return (time.perf_counter() - t0) / runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = {"backend": "torch", "available": True, "detail": f"torch {torch.__version__}, {torch.get_num_threads()} threads"}

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    out["matmul_1024_gflops"] = round(2 * 1024**3 / time_it(lambda: a @ b, 1, 2) / 1e9, 1)

    model = SanaTransformer2DModel(**TRANSFORMER)
    out["params"] = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    latents = torch.randn(BATCH, TRANSFORMER["in_channels"], LATENT, LATENT)
    noise = torch.randn_like(latents)
    sigmas = torch.rand(BATCH)
    text = torch.randn(BATCH, TEXT_TOKENS, TRANSFORMER["caption_channels"])
    mask = torch.zeros(BATCH, TEXT_TOKENS)
    for i, n in enumerate(TEXT_LENGTHS):
        mask[i, :n] = 1

    def train_step():
        s = sigmas.view(-1, 1, 1, 1)
        xt = (1 - s) * latents + s * noise
        v = model(xt, encoder_hidden_states=text, encoder_attention_mask=mask, timestep=sigmas * 1000, return_dict=False)[0]
        loss = torch.nn.functional.mse_loss(v, noise - latents)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(2):
        train_step()
    step_s = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        train_step()
        step_s.append(time.perf_counter() - t0)
    out["train_steps_per_s"] = round(1 / statistics.median(step_s), 3)  # median: robust to a slowed step

    @torch.no_grad()
    def forward():
        model(latents, encoder_hidden_states=text, encoder_attention_mask=mask, timestep=sigmas * 1000, return_dict=False)[0].sum().item()

    out["forward_ms"] = round(time_it(forward, 1, 3) * 1000, 1)

    ae = AutoencoderDC(**AUTOENCODER)
    scheduler = DPMSolverMultistepScheduler(flow_shift=3.0, use_flow_sigmas=True, prediction_type="flow_prediction")

    @torch.no_grad()
    def sample_image():
        scheduler.set_timesteps(SAMPLING_STEPS)
        x = noise[:1].clone()
        cond_text = torch.cat([text[1:2], text[0:1]])  # [uncond, cond]
        cond_mask = torch.cat([mask[1:2], mask[0:1]])
        for t in scheduler.timesteps:
            v = model(torch.cat([x, x]), encoder_hidden_states=cond_text, encoder_attention_mask=cond_mask, timestep=t.expand(2), return_dict=False)[0]
            uncond, cond = v.chunk(2)
            x = scheduler.step(uncond + GUIDANCE_SCALE * (cond - uncond), t, x, return_dict=False)[0]
        ae.decode(x / AUTOENCODER["scaling_factor"]).sample.sum().item()

    out["sample_s_per_image"] = round(time_it(sample_image, 0, 1), 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
