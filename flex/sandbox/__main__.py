"""python -m flex.sandbox [--host 127.0.0.1] [--port 8100]"""

import argparse

from werkzeug.serving import run_simple

from .app import create_sandbox_app

parser = argparse.ArgumentParser(description="Local Flex sandbox simulator")
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8100)
args = parser.parse_args()
print(f"Flex sandbox simulator at http://{args.host}:{args.port}/v1", flush=True)
run_simple(args.host, args.port, create_sandbox_app(), threaded=True)
