"""Print the manifests for N replicas: `python k8s/scale.py 3 | kubectl apply -f -`.

spec.replicas and the init container's REPLICAS (which writes the address list of the Bytewax
cluster) must change together; this is the one place that changes them. Stop-and-start is part
of a Bytewax rescale anyway: every pod restarts with the new cluster size, and state is
re-routed from the shared recovery store.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFESTS = ["configmap.yaml", "service.yaml", "pdb.yaml", "recovery-pvc.yaml", "statefulset.yaml"]
MAX_REPLICAS = 24  # = RECOVERY_PARTITIONS: never run more workers than recovery partitions


def render(replicas: int) -> str:
    """Return every manifest as one multi-document YAML, scaled to ``replicas``."""
    if not 1 <= replicas <= MAX_REPLICAS:
        msg = f"replicas must be between 1 and {MAX_REPLICAS} (the recovery partitions)"
        raise ValueError(msg)
    docs = []
    for name in MANIFESTS:
        text = (HERE / name).read_text()
        if name == "statefulset.yaml":
            text = re.sub(r"(?m)^  replicas: \d+$", f"  replicas: {replicas}", text)
            text = re.sub(r'(- name: REPLICAS\n\s+value: )"\d+"', rf'\g<1>"{replicas}"', text)
        docs.append(text)
    return "---\n".join(docs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("replicas", type=int)
    sys.stdout.write(render(parser.parse_args().replicas))
