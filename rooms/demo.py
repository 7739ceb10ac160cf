"""Demo chat for the embedded default (``make run``): a short exchange between the demo teacher
and the demo student in the demo community's default channel, posted through the chat service
(stored, announced and notified as any message)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from hub.identity.models import User
from hub.services import HUB
from rooms.channels import community_channel
from rooms.models import ChatMessage
from rooms.services import ROOMS

WELCOME = (
    "Welcome to Python learners! Ask anything here, and open the study group's project "
    "to run the program in main.py."
)
REPLY = "Thanks! I ran it and got a little bar chart. Shall we fix fizzbuzz in practice.py next?"


async def seed_demo_chat(
    app: web.Application, community_id: int, teacher_email: str, student_email: str
) -> bool:
    """Post the exchange unless the community's default channel has messages already; returns
    whether it posted. Safe to run on every start."""
    channel = community_channel(community_id, "", is_default=True)
    async with app[HUB].db.sessions() as s:
        if await s.scalar(select(ChatMessage.seq).where(ChatMessage.channel == channel).limit(1)):
            return False
        users = {
            u.email: u
            for u in await s.scalars(
                select(User).where(User.email.in_([teacher_email, student_email]))
            )
        }
    chat = app[ROOMS].chat
    welcome = await chat.publish(users[teacher_email], channel, {"text": WELCOME})
    await chat.publish(users[student_email], channel, {"text": REPLY, "reply_to": welcome})
    return True
