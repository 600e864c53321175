#!/usr/bin/env bash
# End to end (issue 11): the demo's whole scenario, headless, as TAP — the platform on three
# simulated hosts with mTLS, a database ordered on the Starter plan and migrated to Business
# while a client commits, TLS through the VIP (pg_stat_ssl), a read from a follower, the VIP
# holder's host cut (VIP move < 3 s) and the leader killed (commits resume < 15 s) with no
# acknowledged commit lost, scale and replace, a dump on a follower and a point-in-time restore
# (exactly the rows before the target), isolation of a second network with the same subnet,
# netagentctl doctor healthy on every host, and full cleanup. Every line of the demo that says
# a step held is an assertion on behaviour (a row, a connection, a measured bound).
# timeout: 1200
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEMO_TAP=1 exec "$ROOT/scripts/demo.sh"
