"""An OTLP/HTTP trace receiver for vouch's tests, decoding with OpenTelemetry's own protobuf bindings (PyPI
`opentelemetry-proto`, with `protobuf`).

Listens on 127.0.0.1 (a free port, printed first on stdout). Every POST to /v1/traces must be an
`application/x-protobuf` ExportTraceServiceRequest; it is parsed with the generated message class and one
JSON line is printed per span: ids in hex, the parent span id ("" for a root), the name, the kind, the
attributes and the resource's attributes. The answer is an empty ExportTraceServiceResponse. A request that
does not parse is answered 400 and printed as {"error": ...}.

With RECEIVER_TLS_CERT and RECEIVER_TLS_KEY (PEM files) it serves HTTPS, and with RECEIVER_CLIENT_CA too it
asks every client for a certificate issued by that CA and refuses the connection without one.
"""
import json
import os
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind == "bytes_value":
        return v.bytes_value.hex()
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind)


def attributes(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        try:
            if self.path != "/v1/traces":
                raise ValueError(f"POST to {self.path}, not /v1/traces")
            content_type = self.headers.get("content-type", "")
            if content_type != "application/x-protobuf":
                raise ValueError(f"content-type {content_type!r}, not application/x-protobuf")
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            lines = []
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        lines.append({
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "trace_state": span.trace_state,
                            "name": span.name,
                            "kind": Span.SpanKind.Name(span.kind),
                            "attributes": attributes(span.attributes),
                            "events": [e.name for e in span.events],
                            "scope": scope_spans.scope.name,
                            "resource": resource,
                        })
            status, answer = 200, ExportTraceServiceResponse().SerializeToString()
        except Exception as e:  # what the bindings refuse is the finding
            lines = [{"error": f"{type(e).__name__}: {e}"}]
            status, answer = 400, b""
        for line in lines:
            print(json.dumps(line), flush=True)
        self.send_response(status)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
if os.environ.get("RECEIVER_TLS_CERT"):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.environ["RECEIVER_TLS_CERT"], os.environ["RECEIVER_TLS_KEY"])
    if os.environ.get("RECEIVER_CLIENT_CA"):
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(os.environ["RECEIVER_CLIENT_CA"])
    # A failed handshake (a client that does not trust us, or brings no certificate) raises in accept(),
    # which the server drops as an OSError: nothing is printed for it.
    server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    sys.exit(0)
