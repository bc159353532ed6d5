"""A CloudEvents sink for vouch's tests, built on the CloudEvents Python SDK (PyPI `cloudevents` 2.x).

Listens on 127.0.0.1 (a free port, printed first on stdout), parses every POST with the SDK's HTTP binding
(`from_http_event`: binary or structured mode, attributes checked by the SDK) and prints one JSON line per
event: its attributes, its data, and the content mode the request used. A request the SDK refuses is
answered 400 and printed as {"error": ...}.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cloudevents.core.bindings.http import HTTPMessage, from_http_event


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            event = from_http_event(HTTPMessage(headers=headers, body=body))
            data = event.get_data()
            if isinstance(data, (bytes, str)):
                data = json.loads(data)
            line = {
                "mode": "binary" if "ce-specversion" in headers else "structured",
                "specversion": event.get_specversion(),
                "id": event.get_id(),
                "source": event.get_source(),
                "type": event.get_type(),
                "subject": event.get_subject(),
                "time": event.get_time().isoformat() if event.get_time() else None,
                "datacontenttype": event.get_datacontenttype(),
                "data": data,
            }
            status = 204
        except Exception as e:  # the SDK's refusal is the finding
            line = {"error": f"{type(e).__name__}: {e}"}
            status = 400
        print(json.dumps(line), flush=True)
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    sys.exit(0)
