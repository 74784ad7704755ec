"""keep_freed_memory: a search step's large temporaries reuse freed pages instead of new ones."""

import platform
import subprocess
import sys

import pytest

STEP_FAULTS = """
import resource, sys, torch
from aim.models.gated import GatedInteractions
from aim.search.candidates import all_pairs
from aim.memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory() and keep_freed_memory()  # applied, and idempotent
torch.manual_seed(0)
torch.set_num_threads(2)
n, batch = 20, 2048
pairs = all_pairs(n)
index, functions = pairs.repeat_interleave(4, 0), torch.arange(4).repeat(len(pairs))
model = GatedInteractions([50] * n, 10, [(index, functions)], function_wise=True)
opt = torch.optim.Adam(model.parameters())
ids, labels = torch.randint(0, 50, (batch, n)), torch.randint(0, 2, (batch,)).float()
def step():
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(ids), labels)
    opt.zero_grad()
    loss.backward()
    opt.step()
for _ in range(2):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def _faults_per_step(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", STEP_FAULTS, mode], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_search_step_reuses_freed_pages():
    default, kept = _faults_per_step("default"), _faults_per_step("keep")
    assert kept < 0.5 * default, f"page faults per step: {kept} with keep_freed_memory, {default} without"
