#!/usr/bin/python3
"""A small MQTT client on Debian's paho-mqtt 1.6.1, driven by the broker tests.

Connects (TCP, TLS or WebSocket), optionally subscribes and publishes, waits for N messages
(or a timeout) and prints one JSON object: {"rc", "granted", "messages", "published"}.
"""
import argparse
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt

p = argparse.ArgumentParser()
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--port", type=int, required=True)
p.add_argument("--transport", choices=["tcp", "websockets"], default="tcp")
p.add_argument("--tls-ca")
p.add_argument("--client-id", default="")
p.add_argument("--clean", choices=["true", "false"], default="true")
p.add_argument("--username")
p.add_argument("--password")
p.add_argument("--sub", action="append", default=[], help="filter:qos")
p.add_argument("--pub", action="append", default=[], help="topic:qos:retain:payload")
p.add_argument("--will", help="topic:qos:retain:payload")
p.add_argument("--expect", type=int, default=0, help="messages to wait for")
p.add_argument("--timeout", type=float, default=10.0)
p.add_argument("--abort", action="store_true", help="drop the socket without DISCONNECT (fires the will)")
a = p.parse_args()

client = mqtt.Client(client_id=a.client_id, clean_session=(a.clean == "true"), transport=a.transport)
if a.transport == "websockets":
    client.ws_set_options(path="/mqtt")
if a.tls_ca:
    client.tls_set(ca_certs=a.tls_ca)
if a.username is not None:
    client.username_pw_set(a.username, a.password)
if a.will:
    t, q, r, payload = a.will.split(":", 3)
    client.will_set(t, payload, int(q), r == "true")

out = {"rc": None, "granted": [], "messages": [], "published": 0}
connected = threading.Event()
subscribed = threading.Event()
done = threading.Event()
published = threading.Semaphore(0)


def on_connect(c, userdata, flags, rc):
    out["rc"] = rc
    connected.set()


def on_subscribe(c, userdata, mid, granted):
    out["granted"] = list(granted)
    subscribed.set()


def on_message(c, userdata, msg):
    try:
        payload = msg.payload.decode("utf-8")
    except UnicodeDecodeError:
        payload = msg.payload.hex()
    out["messages"].append({"topic": msg.topic, "payload": payload, "qos": msg.qos, "retain": bool(msg.retain)})
    if a.expect and len(out["messages"]) >= a.expect:
        done.set()


def on_publish(c, userdata, mid):
    out["published"] += 1
    published.release()


client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.on_publish = on_publish
deadline = time.time() + a.timeout
try:
    client.connect(a.host, a.port, keepalive=30)
except Exception as e:  # refused TLS handshakes land here
    out["error"] = str(e)
    print(json.dumps(out))
    sys.exit(0)
client.loop_start()
connected.wait(max(0.1, deadline - time.time()))
if out["rc"] == 0:
    if a.sub:
        client.subscribe([(s.rsplit(":", 1)[0], int(s.rsplit(":", 1)[1])) for s in a.sub])
        subscribed.wait(max(0.1, deadline - time.time()))
    for spec in a.pub:
        t, q, r, payload = spec.split(":", 3)
        client.publish(t, payload, int(q), r == "true")
    for _ in a.pub:
        published.acquire(timeout=max(0.1, deadline - time.time()))
    if a.expect:
        done.wait(max(0.1, deadline - time.time()))
if a.abort:
    client.socket().close()
    client.loop_stop()
else:
    client.disconnect()
    client.loop_stop()
print(json.dumps(out))
