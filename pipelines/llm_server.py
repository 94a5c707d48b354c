"""Child process that runs the embedded llama.cpp server (xllamacpp) on 127.0.0.1.

Why a process of its own: xllamacpp's Cython module refuses to load next to other Cython
extensions already imported by the engine ("Shared Cython type ... has the wrong size"), and a
separate process also contains a crash or a runaway generation (the parent kills it by pid).

Protocol: started by :class:`pipelines.llm.EmbeddedServer`; reads the API key from the
environment variable ``EWS_EMBEDDED_LLM_KEY``; prints one JSON line ``{"base_url": ...,
"load_seconds": ...}`` on stdout, then serves until its stdin closes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gguf", required=True)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.gguf
    params.n_ctx = args.n_ctx
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    key = os.environ.get("EWS_EMBEDDED_LLM_KEY", "")
    if key:
        params.api_keys = [key]
    started = time.perf_counter()
    server = xllamacpp.Server(params)
    print(
        json.dumps(
            {
                "base_url": str(server.listening_address).rstrip("/"),
                "load_seconds": round(time.perf_counter() - started, 3),
            }
        ),
        flush=True,
    )
    sys.stdin.read()  # serve until the parent closes our stdin (or dies)
    del server
    return 0


if __name__ == "__main__":
    sys.exit(main())
