"""Benchmark: finding courses (``GET /api/courses?q=…``) among 10,000 published ones, on one hub
process.

Usage: ``.venv/bin/python bench/catalog.py [--seconds 30] [--clients 16] [--warmup 5]
[--courses 10000] [--rate 1500] [--profile]``

A fresh PostgreSQL database is created (and dropped at the end), migrated with ``cohort
migrate`` (which creates the full-text index, migration 0008), and served by a real ``cohort
serve`` process on a free port (in-process broker, default log level). Seeding goes straight
into the tables with SQLAlchemy Core and the catalog models, for speed (10,000 courses through
the API would take many minutes of argon2 and HTTP): teachers (users with a placeholder
password hash), courses with realistic titles, subtitles, descriptions and tags made from word
lists, ``course_tags`` rows and ``tags_text`` exactly as ``catalog.courses`` writes them
(``tag_words``), one to three sections with two to six text lessons each, publication dates,
prices, enrollment and rating counters; then ``VACUUM ANALYZE``, as autovacuum leaves a table
some time after a bulk load (statistics, and the visibility map that lets PostgreSQL count
from an index alone).

The load: ``--clients`` concurrent clients in this process (aiohttp, keep-alive), each
request drawn from a fixed mix: one search word from the vocabulary (most requests), two
words, a word with another sort, a word on a later page, a tag filter, a level filter, and the
unfiltered listing by popularity / newest / rating / price on its first pages. ``--warmup``
seconds untimed, then ``--seconds`` timed, closed loop (each client sends its next request
when the previous one is answered). With ``--rate R`` a second, open-loop phase follows:
requests are due at R per second whatever the answers do, latency counting from when each was
due (no coordinated omission), at most ``--clients`` in flight.

The machine's cores are shared by the hub, PostgreSQL and this client: the JSON reports the
CPU seconds of each over the timed window.

stdout gets exactly one JSON line; progress and diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import asyncpg
import hubbench
from hubbench import BenchError, HubEnv, note

SEED = 20261126

# Word lists --------------------------------------------------------------------------------------

# subject -> (title forms, skills, tags)
SUBJECTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "python": (
        "Python",
        ("scripting", "automation", "testing", "packaging"),
        ("python", "programming"),
    ),
    "javascript": (
        "JavaScript",
        ("closures", "promises", "dom", "bundling"),
        ("javascript", "web"),
    ),
    "typescript": ("TypeScript", ("generics", "types", "tooling"), ("typescript", "web")),
    "rust": ("Rust", ("ownership", "lifetimes", "traits", "concurrency"), ("rust", "programming")),
    "go": ("Go", ("goroutines", "channels", "interfaces"), ("go", "programming")),
    "sql": ("SQL", ("joins", "indexes", "queries", "transactions"), ("sql", "databases")),
    "postgres": ("PostgreSQL", ("indexing", "replication", "tuning"), ("postgresql", "databases")),
    "ml": (
        "Machine Learning",
        ("regression", "classification", "clustering", "features"),
        ("machine-learning", "data-science"),
    ),
    "dl": (
        "Deep Learning",
        ("neural", "networks", "transformers", "training"),
        ("deep-learning", "data-science"),
    ),
    "stats": (
        "Statistics",
        ("probability", "inference", "sampling", "hypothesis"),
        ("statistics", "math"),
    ),
    "calculus": (
        "Calculus",
        ("derivatives", "integrals", "limits", "series"),
        ("calculus", "math"),
    ),
    "algebra": (
        "Linear Algebra",
        ("matrices", "vectors", "eigenvalues"),
        ("linear-algebra", "math"),
    ),
    "dataviz": (
        "Data Visualization",
        ("charts", "dashboards", "storytelling"),
        ("data-visualization", "data-science"),
    ),
    "excel": ("Excel", ("formulas", "pivot", "tables", "macros"), ("excel", "business")),
    "accounting": (
        "Accounting",
        ("ledgers", "balance", "statements", "bookkeeping"),
        ("accounting", "business"),
    ),
    "marketing": (
        "Digital Marketing",
        ("seo", "campaigns", "analytics", "email"),
        ("marketing", "business"),
    ),
    "pm": (
        "Project Management",
        ("planning", "agile", "scrum", "risk"),
        ("project-management", "business"),
    ),
    "speaking": (
        "Public Speaking",
        ("presentations", "storytelling", "confidence"),
        ("public-speaking", "communication"),
    ),
    "writing": (
        "Creative Writing",
        ("fiction", "poetry", "dialogue", "editing"),
        ("writing", "arts"),
    ),
    "watercolor": (
        "Watercolor Painting",
        ("washes", "pigments", "landscapes"),
        ("watercolor", "arts"),
    ),
    "drawing": ("Drawing", ("sketching", "perspective", "anatomy", "shading"), ("drawing", "arts")),
    "photo": (
        "Photography",
        ("lighting", "composition", "portraits", "exposure"),
        ("photography", "arts"),
    ),
    "film": ("Film Editing", ("cutting", "color", "grading", "montage"), ("film", "video")),
    "music": ("Music Theory", ("harmony", "scales", "chords", "rhythm"), ("music", "theory")),
    "guitar": ("Guitar", ("strumming", "fingerstyle", "chords", "blues"), ("guitar", "music")),
    "piano": ("Jazz Piano", ("voicings", "improvisation", "standards"), ("piano", "music")),
    "spanish": (
        "Spanish",
        ("grammar", "conversation", "vocabulary", "pronunciation"),
        ("spanish", "languages"),
    ),
    "french": ("French", ("grammar", "conversation", "listening"), ("french", "languages")),
    "japanese": ("Japanese", ("kanji", "hiragana", "conversation"), ("japanese", "languages")),
    "chemistry": (
        "Organic Chemistry",
        ("reactions", "molecules", "synthesis"),
        ("chemistry", "science"),
    ),
    "physics": ("Physics", ("mechanics", "electricity", "waves", "optics"), ("physics", "science")),
    "astronomy": (
        "Astronomy",
        ("telescopes", "planets", "galaxies", "stars"),
        ("astronomy", "science"),
    ),
    "biology": ("Cell Biology", ("genetics", "proteins", "evolution"), ("biology", "science")),
    "docker": ("Docker", ("containers", "images", "compose", "volumes"), ("docker", "devops")),
    "k8s": ("Kubernetes", ("pods", "deployments", "helm", "operators"), ("kubernetes", "devops")),
    "linux": ("Linux", ("shell", "permissions", "systemd", "networking"), ("linux", "devops")),
    "security": (
        "Cybersecurity",
        ("encryption", "threats", "pentesting", "forensics"),
        ("security", "it"),
    ),
    "cloud": ("Cloud Computing", ("serverless", "storage", "scaling"), ("cloud", "devops")),
    "ux": ("UX Design", ("research", "prototyping", "usability", "wireframes"), ("ux", "design")),
    "gamedev": (
        "Game Design",
        ("mechanics", "levels", "prototyping", "unity"),
        ("game-design", "design"),
    ),
    "modeling": ("3D Modeling", ("blender", "sculpting", "texturing", "rigging"), ("3d", "design")),
    "nutrition": ("Nutrition", ("diet", "metabolism", "cooking", "meal"), ("nutrition", "health")),
    "yoga": ("Yoga", ("breathing", "flexibility", "posture", "meditation"), ("yoga", "health")),
    "woodworking": (
        "Woodworking",
        ("joinery", "carving", "finishing", "tools"),
        ("woodworking", "crafts"),
    ),
    "pottery": ("Pottery", ("wheel", "glazing", "firing", "clay"), ("pottery", "crafts")),
    "economics": (
        "Economics",
        ("markets", "inflation", "trade", "policy"),
        ("economics", "social-science"),
    ),
    "psychology": (
        "Psychology",
        ("memory", "behavior", "cognition", "emotion"),
        ("psychology", "social-science"),
    ),
    "philosophy": (
        "Philosophy",
        ("ethics", "logic", "metaphysics", "argument"),
        ("philosophy", "humanities"),
    ),
    "history": (
        "World History",
        ("empires", "revolutions", "trade", "wars"),
        ("history", "humanities"),
    ),
    "robotics": (
        "Robotics",
        ("sensors", "motors", "arduino", "control"),
        ("robotics", "engineering"),
    ),
}
TITLE_FORMS = (
    "Introduction to {s}",
    "{s} for Beginners",
    "Mastering {s}",
    "Practical {s}",
    "The Complete {s} Course",
    "{s} in 30 Days",
    "{s}: From Zero to Confident",
    "Advanced {s} Techniques",
    "{s} Fundamentals",
    "Hands-on {s} with Real Projects",
    "{s} Essentials for Professionals",
    "Applied {s}",
)
AUDIENCES = (
    "beginners",
    "students",
    "professionals",
    "hobbyists",
    "engineers",
    "teachers",
    "artists",
)
GENERIC = (
    "projects",
    "exercises",
    "quizzes",
    "fundamentals",
    "examples",
    "workflow",
    "practice",
    "skills",
    "techniques",
    "principles",
    "mistakes",
    "habits",
    "portfolio",
    "career",
)
SENTENCES = (
    "This course teaches {k1} and {k2} through {n} hands-on {g}.",
    "You will practise {k1} step by step, with {g} after every lesson.",
    "We start from the fundamentals of {s} and build up to {k2}.",
    "Ideal for {a} who want solid {g} in {s}.",
    "Each week covers {k1}, common mistakes and the habits of experienced practitioners.",
    "By the end you will have a portfolio of {g} that show real {k2}.",
    "Short videos, readable notes and {g} keep the pace steady.",
    "Learn how professionals approach {k1} and why {k2} matters.",
)
LEVELS = ("beginner", "intermediate", "advanced")


def make_course(rng: random.Random, subject_key: str, index: int) -> dict[str, Any]:
    name, skills, subject_tags = SUBJECTS[subject_key]
    title = rng.choice(TITLE_FORMS).format(s=name)
    k1, k2 = rng.sample(skills, 2) if len(skills) > 1 else (skills[0], skills[0])
    audience = rng.choice(AUDIENCES)
    subtitle = f"Learn {k1} and {k2} with {rng.randint(3, 12)} {rng.choice(GENERIC)} for {audience}"
    words = {
        "s": name,
        "k1": k1,
        "k2": k2,
        "g": rng.choice(GENERIC),
        "a": audience,
        "n": rng.randint(3, 20),
    }
    description = " ".join(rng.choice(SENTENCES).format(**words) for _ in range(rng.randint(3, 7)))
    tags = list(subject_tags) + rng.sample(skills, rng.randint(0, 2))
    if rng.random() < 0.3:
        tags.append(rng.choice(("career", "weekend", "certificate", "kids", "remote")))
    return {
        "title": f"{title}" if rng.random() < 0.8 else f"{title} ({index})",
        "subtitle": subtitle[:300],
        "description": description,
        "tags": tags,
    }


def vocabulary() -> tuple[list[str], list[str]]:
    """Search words (content words of the corpus) and tags."""
    words: set[str] = set(GENERIC) | set(AUDIENCES)
    tags: set[str] = set()
    for name, skills, subject_tags in SUBJECTS.values():
        words.update(w.lower() for w in name.replace(":", " ").split() if len(w) > 2)
        words.update(skills)
        tags.update(subject_tags)
    return sorted(words), sorted(tags)


# Seeding -----------------------------------------------------------------------------------------


async def seed(url: str, count: int, teachers: int) -> dict[str, Any]:
    """Courses straight into the tables (SQLAlchemy Core with the catalog models)."""
    from sqlalchemy import insert
    from sqlalchemy.ext.asyncio import create_async_engine

    from catalog.courses import slugify, tag_words
    from catalog.models import Course, CourseTag, Lesson, Section
    from hub.identity.models import User

    rng = random.Random(SEED)
    now = datetime.now(UTC)
    engine = create_async_engine(url)
    started = time.monotonic()
    try:
        async with engine.begin() as conn:
            users = [
                {
                    "email": f"teacher{i}@bench.example",
                    # Placeholder: these accounts never sign in.
                    "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$bench$bench",
                    "display_name": f"Teacher {i}",
                    "bio": "",
                    "avatar_color": "#4f46e5",
                    "is_admin": False,
                    "teacher_verified_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(teachers)
            ]
            owner_ids = list((await conn.execute(insert(User).returning(User.id), users)).scalars())
            keys = list(SUBJECTS)
            # A few subjects are much more common than others, as in a real catalog.
            weights = [1.0 / (1 + i) ** 0.7 for i in range(len(keys))]
            batch = 1000
            course_total = lessons_total = 0
            for start in range(0, count, batch):
                rows = []
                for index in range(start, min(count, start + batch)):
                    course = make_course(rng, rng.choices(keys, weights)[0], index)
                    published = now - timedelta(days=rng.uniform(0, 720))
                    ratings = int(rng.paretovariate(1.5)) - 1 if rng.random() < 0.7 else 0
                    rows.append(
                        {
                            "owner_id": rng.choice(owner_ids),
                            "title": course["title"],
                            "slug": f"{slugify(course['title'])}-{index}",
                            "subtitle": course["subtitle"],
                            "description": course["description"],
                            "tags": course["tags"],
                            "tags_text": " ".join(tag_words(course["tags"])),
                            "level": rng.choice(LEVELS),
                            "language": "en",
                            "price": 0 if rng.random() < 0.15 else rng.randint(5, 400),
                            "status": "published",
                            "created_at": published - timedelta(days=rng.uniform(1, 30)),
                            "updated_at": published,
                            "published_at": published,
                            "enrollment_count": int(rng.paretovariate(1.2) * 3) - 3,
                            "rating_count": ratings,
                            "rating_total": sum(rng.randint(3, 5) for _ in range(ratings)),
                        }
                    )
                ids = list(
                    (await conn.execute(insert(Course).returning(Course.id), rows)).scalars()
                )
                tag_rows = [
                    {"course_id": cid, "tag": word}
                    for cid, row in zip(ids, rows, strict=True)
                    for word in tag_words(row["tags"])
                ]
                await conn.execute(insert(CourseTag), tag_rows)
                section_rows = []
                for cid in ids:
                    for position in range(rng.randint(1, 3)):
                        section_rows.append(
                            {
                                "course_id": cid,
                                "title": f"Part {position + 1}",
                                "position": position,
                            }
                        )
                section_ids = list(
                    (
                        await conn.execute(
                            insert(Section).returning(Section.id, Section.course_id), section_rows
                        )
                    ).all()
                )
                lesson_rows = [
                    {
                        "section_id": sid,
                        "course_id": cid,
                        "title": f"Lesson {position + 1}",
                        "kind": "text",
                        "video_id": None,
                        "body": "Read this, then try the exercise.",
                        "free_preview": position == 0,
                        "position": position,
                    }
                    for sid, cid in section_ids
                    for position in range(rng.randint(2, 6))
                ]
                await conn.execute(insert(Lesson), lesson_rows)
                course_total += len(ids)
                lessons_total += len(lesson_rows)
        async with engine.connect() as conn:
            await conn.exec_driver_sql("COMMIT")
            await conn.exec_driver_sql("VACUUM ANALYZE")
    finally:
        await engine.dispose()
    return {
        "how": "SQLAlchemy Core inserts with the catalog models (tags_text and course_tags as "
        "catalog.courses writes them), then VACUUM ANALYZE",
        "courses": course_total,
        "lessons": lessons_total,
        "teachers": teachers,
        "seconds": round(time.monotonic() - started, 1),
    }


async def index_info(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect("postgresql://" + url.split("://", 1)[1])
    try:
        present = await conn.fetchval(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'courses_search_fts_idx'"
        )
        options = await conn.fetchval(
            "SELECT reloptions FROM pg_class WHERE relname = 'courses_search_fts_idx'"
        )
        published = await conn.fetchval("SELECT count(*) FROM courses WHERE status = 'published'")
    finally:
        await conn.close()
    return {
        "courses_search_fts_idx": bool(present),
        "courses_search_fts_idx_options": options,
        "published_courses": int(published),
    }


# Load ---------------------------------------------------------------------------------------------


class QueryMix:
    """The next catalog request, drawn from a fixed mix (seeded, so runs compare)."""

    SORTS = ("newest", "rating", "price", "popular", "price_desc")

    def __init__(self, words: list[str], tags: list[str], seed: int) -> None:
        self.words = words
        self.tags = tags
        self.rng = random.Random(seed)
        self.kinds: dict[str, int] = {}
        # Each kind's service times: from sending to the whole answer read, without the wait
        # for a free connection (where the open loop's tail comes from, by kind).
        self.service: dict[str, list[float]] = {}

    def params(self) -> tuple[str, dict[str, str]]:
        rng = self.rng
        roll = rng.random()
        word = rng.choice(self.words)
        if roll < 0.55:
            return "q", {"q": word}
        if roll < 0.65:
            return "q2", {"q": f"{word} {rng.choice(self.words)}"}
        if roll < 0.75:
            return "q+sort", {"q": word, "sort": rng.choice(self.SORTS)}
        if roll < 0.80:
            return "q+page", {"q": word, "page": str(rng.randint(2, 5))}
        if roll < 0.88:
            return "tag", {"tag": rng.choice(self.tags)}
        if roll < 0.90:
            return "q+level", {"q": word, "level": rng.choice(LEVELS)}
        return "browse", {"sort": rng.choice(self.SORTS), "page": str(rng.randint(1, 3))}

    def next_call(self, _client: int) -> hubbench.Call:
        kind, params = self.params()
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        url = "/api/courses?" + urlencode(params)
        service = self.service.setdefault(kind, [])

        async def call(session: aiohttp.ClientSession) -> int:
            started = time.perf_counter()
            async with session.get(url) as resp:
                await resp.read()
            service.append(time.perf_counter() - started)
            return resp.status

        return call

    def service_by_kind(self) -> dict[str, dict[str, float]]:
        """Per kind of request: how many, and its service time's p50, p99 and max in ms."""
        figures = {}
        for kind, seconds in sorted(self.service.items()):
            values = sorted(seconds)
            figures[kind] = {
                "n": len(values),
                "p50_ms": round(hubbench.percentile(values, 0.50) * 1000, 2),
                "p99_ms": round(hubbench.percentile(values, 0.99) * 1000, 2),
                "max_ms": round(values[-1] * 1000, 2) if values else float("nan"),
            }
        return figures


async def sample_answers(session: aiohttp.ClientSession, words: list[str]) -> dict[str, Any]:
    """What some searches find: totals, so a run shows the result sizes it measured."""
    totals = []
    for word in words[:: max(1, len(words) // 12)]:
        async with session.get("/api/courses?" + urlencode({"q": word})) as resp:
            data = await resp.json()
            totals.append([word, data["total"], len(data["items"])])
    return {"q_totals": totals}


def uncached_tree(source: Path, dest: Path) -> Path:
    """A copy of the hub's packages with the listing cache turned off (its TTL set to 0), to
    measure what the database and the hub do without it."""
    hubbench.copy_packages(source, dest)
    search = dest / "catalog" / "search.py"
    text = search.read_text()
    patched = re.sub(
        r"^LISTING_CACHE_SECONDS = .*$", "LISTING_CACHE_SECONDS = 0.0", text, count=1, flags=re.M
    )
    if patched == text:
        note(f"{source}: no listing cache to turn off")
    search.write_text(patched)
    return dest


async def measure(
    env: HubEnv,
    code: Path | None,
    args: argparse.Namespace,
    words: list[str],
    tags: list[str],
    mode: str,
    seed_info: dict[str, Any],
) -> dict[str, Any]:
    """One hub process: warm-up, the closed-loop phase and (with --rate) the open-loop one."""
    result: dict[str, Any] = {"hub_code": str(code) if code else "this working tree"}
    async with hubbench.running_hub(env, code) as hub:
        connector = hubbench.connector(args.clients)
        async with aiohttp.ClientSession(base_url=hub.base_url, connector=connector) as session:
            if "q_totals" not in seed_info:
                seed_info.update(await sample_answers(session, words))
            mix = QueryMix(words, tags, SEED)
            note(f"listing cache {mode}: warm-up {args.warmup} s ...")
            await hubbench.closed_loop(session, args.clients, args.warmup, mix.next_call)
            background = await hubbench.wait_for_quiet(args.idle_wait, [hub.pid])
            mix = QueryMix(words, tags, SEED + 1)
            meter = hubbench.CpuMeter(hub.pid)
            profiler = None
            if args.profile:
                out = hubbench.CACHE_DIR / f"catalog-cache-{mode}.pyspy.txt"
                profiler = hubbench.Profiler(hub.pid, args.seconds, out)
                profiler.start()
            note(f"listing cache {mode}: {args.seconds} s closed loop, {args.clients} clients ...")
            meter.start()
            samples, window = await hubbench.closed_loop(
                session, args.clients, args.seconds, mix.next_call
            )
            cpu = meter.stop()
            if profiler is not None:
                profiler.finish()
            closed = hubbench.summarize(samples, window)
            closed["cpu"] = cpu
            closed["hub_cpu_per_request_ms"] = round(
                1000 * cpu["hub_s"] / max(closed["requests"], 1), 3
            )
            closed["client_cpu_per_request_ms"] = round(
                1000 * cpu["client_s"] / max(closed["requests"], 1), 3
            )
            closed["mix_counts"] = dict(sorted(mix.kinds.items()))
            closed["service_ms_by_kind"] = mix.service_by_kind()
            closed["background_cores_before"] = background
            result["closed_loop"] = closed
            if args.rate:
                background = await hubbench.wait_for_quiet(args.idle_wait, [hub.pid])
                mix = QueryMix(words, tags, SEED + 2)
                note(f"listing cache {mode}: {args.seconds} s open loop at {args.rate}/s ...")
                meter.start()
                samples, window = await hubbench.open_loop(
                    session, args.rate, args.clients, args.seconds, mix.next_call
                )
                cpu = meter.stop()
                opened = hubbench.summarize(samples, window)
                opened["offered_per_second"] = args.rate
                opened["service_ms_by_kind"] = mix.service_by_kind()
                opened["cpu"] = cpu
                opened["background_cores_before"] = background
                result["open_loop"] = opened
        result["hub_error_log_lines"] = hub.error_lines()
        result["hub_rss_mib"] = resident_mib(hub.pid)
    return result


def resident_mib(pid: int) -> float | None:
    """The process's resident memory (MiB), listing caches included; None if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    words, tags = vocabulary()
    report: dict[str, Any] = {
        "bench": "catalog",
        "machine": hubbench.machine(),
        "postgres": await hubbench.postgres_info(),
        "cohort": hubbench.cohort_revision(),
        "config": {
            "seconds": args.seconds,
            "warmup_s": args.warmup,
            "clients": args.clients,
            "courses": args.courses,
            "open_loop_rate": args.rate,
            "listing_cache": args.listing_cache,
            "hub_processes": 1,
            "broker": "in-process",
            "hub_log_level": args.hub_log_level,
            "hub_code": args.code or "this working tree",
            "vocabulary_words": len(words),
            "tags": len(tags),
            "mix": "55% q=word, 10% two words, 10% word+sort, 5% word+page 2-5, 8% tag, "
            "2% word+level, 10% browse (sort, page 1-3)",
        },
    }
    async with hubbench.bench_database() as url:
        with hubbench.data_dir() as data:
            env = HubEnv(url, data, extra={"COHORT_LOG_LEVEL": args.hub_log_level})
            done = hubbench.cohort(env, "migrate", code=hubbench.hub_code(args.code))
            if done.returncode != 0:
                raise BenchError(f"cohort migrate failed:\n{done.stderr[-2000:]}")
            note(f"seeding {args.courses} courses (SQLAlchemy Core) ...")
            report["seed"] = await seed(url, args.courses, args.teachers)
            report["seed"].update(await index_info(url))
            code = hubbench.hub_code(args.code)
            modes = ["on", "off"] if args.listing_cache == "both" else [args.listing_cache]
            for mode in modes:
                hub_code = code
                if mode == "off":
                    hub_code = uncached_tree(code or hubbench.ROOT, data / "uncached")
                report[f"listing_cache_{mode}"] = await measure(
                    env, hub_code, args, words, tags, mode, report["seed"]
                )
    report["profiled"] = bool(args.profile)
    report["target"] = {"requests_per_second": 1500, "p99_ms": 25}
    report["notes"] = [
        "one machine: the hub, PostgreSQL and this client process share its cores "
        "(cpu: CPU seconds of each over the timed window)",
        "closed loop: latency = clients / throughput by Little's law, so p99 at a given "
        "client count says little about p99 at the target rate; the open-loop phase measures "
        "that",
        "latency: from sending (open loop: from when the request was due) to reading the "
        "whole answer, in the client",
    ]
    if args.profile:
        report["notes"].append("profiled run: py-spy sampling slows the hub; not a figure")
    report["machine"]["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=30, help="each timed phase (30)")
    parser.add_argument("--warmup", type=float, default=5, help="untimed warm-up (default 5)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument("--courses", type=int, default=10_000, help="courses (default 10000)")
    parser.add_argument("--teachers", type=int, default=200, help="teachers (default 200)")
    parser.add_argument(
        "--rate", type=float, default=0, help="also run open loop at this rate (req/s)"
    )
    parser.add_argument(
        "--idle-wait",
        type=float,
        default=60,
        help="before each timed phase, wait up to N s for other load to stop (default 60)",
    )
    parser.add_argument(
        "--listing-cache",
        choices=["both", "on", "off"],
        default="both",
        help="measure with the hub's listing cache, without it (a copy of the code with its "
        "TTL set to 0), or both, each on a fresh hub process (default both)",
    )
    parser.add_argument(
        "--code",
        help="run the hub from this source tree (same dependencies), e.g. a copy of an older "
        "revision, for before/after comparisons",
    )
    parser.add_argument(
        "--hub-log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument(
        "--profile", action="store_true", help="sample the hub with py-spy during the timed run"
    )
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.courses < 1:
        parser.error("need --clients >= 1, --seconds > 0 and --courses >= 1")
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    try:
        report = asyncio.run(run(args))
    except BenchError as exc:
        note(f"FAILED: {exc}")
        return 1
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
