"""Watch-party call figures (issue 7): time from joining the call to the first remote video
frame, and the hub's CPU while four people hold a mesh call (the hub only relays signalling).

Starts ``cohort serve --migrate --demo`` (embedded SQLite) on a free port, a party on the demo
course's free preview with the demo teacher, admin and student plus a fourth account, then four
aiortc peers (Python, synthetic video, the same signalling a browser uses) join the call one
after the other and stay for ``--hold`` seconds. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from typing import Any

import aiohttp

# watch_sync first: it imports hubbench, which takes bench/ off the import path.
import watch_sync
from watch_sync import Hub, api, prepare

hubbench = watch_sync.hubbench
sys.path.insert(0, str(hubbench.ROOT))

from tests.rooms.call_peer import CallPeer  # noqa: E402  (the repository root, just added)

HOLD = 30.0


async def count_frames(track: Any, counter: list[int]) -> None:
    while True:
        try:
            await track.recv()
        except Exception:
            return
        counter[0] += 1


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hold", type=float, default=HOLD, help="seconds of the 4-person call")
    args = parser.parse_args()
    load_start = [round(v, 2) for v in os.getloadavg()]
    with hubbench.data_dir() as directory:
        env = hubbench.HubEnv(
            database_url=f"sqlite+aiosqlite:///{directory / 'cohort.db'}",
            data_dir=directory,
            extra={"COHORT_TRANSCODE_PRESET": "ultrafast", "COHORT_LOG_FORMAT": "text"},
        )
        hub = Hub(env)
        peers: list[CallPeer] = []
        consumers: list[asyncio.Task[None]] = []
        try:
            hub.spawn()
            await hub.wait_ready(120)
            party_id, tokens = await prepare(hub)
            base = hub.base_url
            async with aiohttp.ClientSession() as session:
                email = f"dana-{uuid.uuid4().hex[:8]}@example.com"
                await api(
                    session,
                    "POST",
                    f"{base}/api/auth/register",
                    json={
                        "email": email,
                        "password": "correct horse battery",
                        "display_name": "Dana",
                    },
                )
                login = await api(
                    session,
                    "POST",
                    f"{base}/api/auth/login",
                    json={"email": email, "password": "correct horse battery"},
                )
                party = await api(session, "GET", f"{base}/api/watch-parties/{party_id}", tokens[0])
                await api(
                    session,
                    "POST",
                    f"{base}/api/watch-parties/join",
                    login["access_token"],
                    json={"code": party["invite_code"]},
                )
                tokens.append(login["access_token"])
                hubbench.note(f"party {party_id} ready on {base}")

                firsts: list[float] = []
                joining = hubbench.CpuMeter(hub.pid)
                joining.start()
                for token in tokens:
                    ticket = await api(session, "POST", f"{base}/api/realtime/ticket", token)
                    ws = await session.ws_connect(f"{base}/ws?ticket={ticket['ticket']}")
                    peer = await CallPeer(ws, party_id).__aenter__()
                    peers.append(peer)
                    joined = time.monotonic()
                    await peer.join()
                    if len(peers) > 1:
                        # The newcomer's first frame from someone already in the call.
                        await asyncio.wait_for(peer.got_track.wait(), 30)
                        track = next(iter(peer.remote.values()))
                        await asyncio.wait_for(track.recv(), 30)
                        firsts.append(time.monotonic() - joined)
                # Every pair connected: 4 peers x 3 remote tracks.
                deadline = time.monotonic() + 60

                def connected() -> int:
                    return sum(len(p.remote) for p in peers)

                while connected() < 12 and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
                tracks = sum(len(p.remote) for p in peers)
                signalling = joining.stop()
                frames = [0]
                for peer in peers:
                    for track in peer.remote.values():
                        consumers.append(asyncio.create_task(count_frames(track, frames)))
                await asyncio.sleep(2)
                frames[0] = 0
                meter = hubbench.CpuMeter(hub.pid)
                meter.start()
                await asyncio.sleep(args.hold)
                cpu = meter.stop()
                received = frames[0]
        finally:
            for task in consumers:
                task.cancel()
            for peer in peers:
                await peer.__aexit__(None, None, None)
            hub.stop()
    print(
        json.dumps(
            {
                "bench": "call",
                "peers": len(peers),
                "mode": "mesh",
                "join_to_first_remote_frame_s": {
                    "each": [round(v, 3) for v in firsts],
                    "p50": round(statistics.median(firsts), 3),
                    "max": round(max(firsts), 3),
                },
                "remote_tracks": tracks,
                "frames_received_per_s": round(received / args.hold, 1),
                "hub_cpu_s": cpu["hub_s"],
                "hub_cpu_s_while_joining": signalling["hub_s"],
                "joining_window_s": signalling["window_s"],
                "hub_cores": cpu["hub_cores"],
                "window_s": cpu["window_s"],
                "client_cpu_s": cpu["client_s"],
                "machine_busy_pct": cpu["machine_busy_pct"],
                "load_start": load_start,
                "load_end": [round(v, 2) for v in os.getloadavg()],
                "client": "aiortc 1.16 peers (Python), synthetic 640x480 video, one process",
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
