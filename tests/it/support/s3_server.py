"""An S3-compatible server for the bundle tests: moto in server mode (PyPI `moto[server]`)
on a loopback port, with one bucket made by stock boto3. Prints `PORT n`, then puts each
`KEY PATH` line read from stdin as an object (boto3's upload), answering `OK`."""
import sys

import boto3
from moto.server import ThreadedMotoServer

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
_, port = server.get_host_and_port()
endpoint = f"http://127.0.0.1:{port}"
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id="test",
    aws_secret_access_key="test",
    region_name="us-east-1",
)
s3.create_bucket(Bucket="bundles")
print(f"PORT {port}", flush=True)
for line in sys.stdin:
    key, path = line.split()
    with open(path, "rb") as f:
        s3.put_object(Bucket="bundles", Key=key, Body=f.read())
    print("OK", flush=True)
server.stop()
