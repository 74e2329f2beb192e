"""bench/cuda_bench_table.py JSONL SMOKE FRAMES...: the table of bench/run_cuda.sh from its
JSON lines (one per run, tagged "run"): re2tal's reversible bf16 step against PyTorch's
reversible and vanilla steps, peak memories, torch.compile beside eager, the input pipeline's
frames/s against the step's, each with its goal (issue 14) and whether it is met. SMOKE=1 (a CPU
run of the plumbing) prints the ratios without goals."""
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
smoke = sys.argv[2] == "1"
frames = [int(f) for f in sys.argv[3:]]
GiB = 1 << 30

def ok(r):
    return r is not None and r.get("status", "ok") == "ok" and "step_ms" in r

def best(prefix):
    """The run of that name (over rounds) with the smallest best step, else the last failed
    one (its status and message go in the table)."""
    c = [r for r in rows if r["run"].startswith(prefix) and ok(r)]
    return min(c, key=lambda r: r["best_step_ms"]) if c else any_run(prefix)

def any_run(prefix):
    c = [r for r in rows if r["run"].startswith(prefix)]
    return c[-1] if c else None

def ms(r):
    if ok(r):
        return "%.1f ms" % r["best_step_ms"]
    r = r or {}
    return r.get("status", "missing") + (" (" + r["message"][:60] + ")" if "message" in r else "")

def goal(v, want):
    return "n/a" if v is None or smoke else ("yes" if v >= want else "NO")

print("| benchmark | re2tal | PyTorch | ratio | goal | met |")
print("|---|---|---|---|---|---|")
step_fps = {}
for f in frames:
    ours = best(f"ours-reversible-{f}-")
    rev, van = best(f"torch-reversible-{f}-r"), any_run(f"torch-vanilla-{f}-eager")
    if ok(ours):
        step_fps[f] = f / (ours["best_step_ms"] / 1000)
    prec = "fp32" if smoke else "bf16 autocast"
    for name, peer, want in ((f"reversible {prec}", rev, 1.2), (f"vanilla {prec}", van, 1.0)):
        ratio = peer["best_step_ms"] / ours["best_step_ms"] if ok(ours) and ok(peer) else None
        met = goal(ratio, want)
        if ok(ours) and peer is not None and peer.get("status") == "oom" and not smoke:
            met = "yes (PyTorch OOM)"
        print(f"| step {f} frames, vs {name} | {ms(ours)} | {ms(peer)} | "
              f"{'%.2f' % ratio if ratio else '-'} | >= {want} | {met} |")
    if smoke:
        continue
    o_peak = ours.get("device_peak_bytes") if ok(ours) else None
    v_peak = van.get("peak_allocated_bytes") if van else None
    oom = van is not None and van.get("status") == "oom"
    if oom:  # it needed more than the card: the card's memory is a lower bound
        v_peak = van.get("total_bytes")
    ratio = v_peak / o_peak if o_peak and v_peak else None
    print(f"| peak memory {f} frames, vs vanilla | {o_peak / GiB if o_peak else 0:.2f} GiB | "
          f"{'>' if oom else ''}{v_peak / GiB if v_peak else 0:.2f} GiB{' (OOM)' if oom else ''} | "
          f"{'%s%.2f' % ('>' if oom else '', ratio) if ratio else '-'} | "
          f">= 4 at 512 | {goal(ratio, 4) if f == 512 else 'info'} |")
    if ok(rev):
        print(f"| peak memory {f} frames, vs reversible | {o_peak / GiB if o_peak else 0:.2f} GiB "
              f"| {rev['peak_allocated_bytes'] / GiB:.2f} GiB | "
              f"{'%.2f' % (rev['peak_allocated_bytes'] / o_peak) if o_peak else '-'} | - | info |")
    if f == 512 and o_peak:
        used = ours["device_used_bytes"] - ours["device_used_before_bytes"]
        adamw = 2 * ours["params_bytes"]
        print(f"| 512-frame step + AdamW ({adamw / GiB:.2f} GiB) under 16 GiB, backbone only | "
              f"{o_peak / GiB:.2f} GiB (cudaMemGetInfo {used / GiB:.2f}) | - | - | < 16 GiB | "
              f"{'yes' if o_peak + adamw < 16 * GiB else 'NO'} |")
for f in frames[:1]:
    for m in ("vanilla", "reversible"):
        c = any_run(f"torch-{m}-{f}-compile")
        e = best(f"torch-{m}-{f}-" + ("r" if m == "reversible" else "eager"))
        if c is None:
            continue
        print(f"| torch.compile {m} {f} frames (eager {ms(e)}) | - | {ms(c)} | "
              f"{'%.2f' % (e['best_step_ms'] / c['best_step_ms']) if ok(c) and ok(e) else '-'} "
              f"(compile speedup) | - | info |")
for spec in ("320x240", "1280x720"):
    # the trainer decodes on one background thread with FFmpeg's own threads: "one" is its
    # pipeline; nproc single-threaded decoders at once are the machine's ceiling
    one, alln = any_run(f"decode-{spec}-one"), any_run(f"decode-{spec}-all")
    if not one or one.get("status", "ok") != "ok":
        print(f"| input pipeline {spec} | {ms(one)} | - | - | >= step f/s | n/a |")
        continue
    ceiling = alln.get("decode_fps") if alln and alln.get("status", "ok") == "ok" else None
    if not step_fps:
        print(f"| input pipeline {spec}: one decoder | {one['decode_fps']:.0f} f/s "
              f"({alln['decoders'] if ceiling else '?'} decoders: "
              f"{'%.0f' % ceiling if ceiling else '-'}) | no step | - | >= step f/s | n/a |")
    for f, sfps in sorted(step_fps.items()):
        print(f"| input pipeline {spec}: one decoder vs the {f}-frame step | "
              f"{one['decode_fps']:.0f} f/s ({alln['decoders'] if ceiling else '?'} decoders: "
              f"{'%.0f' % ceiling if ceiling else '-'}) | step {sfps:.0f} f/s | "
              f"{one['decode_fps'] / sfps:.2f} | >= 1 | {goal(one['decode_fps'] / sfps, 1.0)} |")
bad = [r["run"] for r in rows if r.get("status", "ok") not in ("ok", "oom")]
print(f"\nruns: {len(rows)}, not ok: {', '.join(bad) if bad else 'none'}")
