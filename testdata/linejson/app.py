#!/usr/bin/env python3
"""A legacy application of a few lines, standard library only, that talks to
pycomms-host through the linejson transport (plugins/linejson): it
subscribes, calls a service, sends, publishes and gets its own event back,
and shows that a malformed line gets an error line on a connection that
stays usable. Usage: app.py HOST:PORT. It prints every line it reads."""
import json
import socket
import sys

host, port = sys.argv[1].rsplit(":", 1)
conn = socket.create_connection((host, int(port)), timeout=10)
f = conn.makefile("rw", encoding="utf-8", newline="\n")


def request(obj, answers=1):
    f.write(json.dumps(obj) + "\n")
    f.flush()
    for _ in range(answers):
        print(f.readline().strip(), flush=True)


request({"op": "sub", "id": 1, "topic": "news.>"})
request({"op": "call", "id": 2, "subject": "echo.upper", "data": "hi"})
request({"op": "send", "id": 3, "subject": "echo.upper", "data": "x"})
request({"op": "pub", "id": 4, "topic": "news.today", "data": {"n": 1}}, answers=2)
f.write("this is not json\n")
f.flush()
print(f.readline().strip(), flush=True)
request({"op": "call", "id": 5, "subject": "nobody.here", "data": 1})
