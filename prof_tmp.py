import asyncio, tempfile, cProfile, pstats, time
from pathlib import Path
from benchmarks.sweep import write_suite
from evals.suite import load_suite
from evals.sweep import Sweep
from runtime.api import Troupe
async def main():
    tmp = tempfile.mkdtemp()
    suite = load_suite(write_suite(Path(tmp), 600))
    t = Troupe.local(lake=Path(tmp)/"lake")
    await Sweep(t, load_suite(write_suite(Path(tmp)/"w" if (Path(tmp)/"w").mkdir() is None else None, 20)), concurrency=20).run()
    pr = cProfile.Profile(); t0=time.process_time(); pr.enable()
    await Sweep(t, suite, concurrency=200).run()
    pr.disable(); print("cpu ms/sample", (time.process_time()-t0)/600*1e3)
    pstats.Stats(pr).sort_stats("cumulative").print_stats(45)
    await t.shutdown()
asyncio.run(main())
