"""--presence-limit: in a room with more local members than the limit, a presence event
reaches only the client it is about (its own join is still its proof of hearing the room),
so joins cost O(1) deliveries each instead of O(room)."""

from chattest import Clients, is_message, is_presence, run, settle


def test_big_room_presence_goes_only_to_its_client(make_gateway):
    g = make_gateway("--presence-limit", "3", "--rate", "1000", "--burst", "1000")

    async def body():
        async with Clients() as cs:
            small = [await cs.open(g.port, f"s{i}") for i in range(3)]
            # Three members: at the limit, everyone sees the third join.
            await small[0].take(is_presence("lobby", "join", small[2].id), 5, "third join")
            late = await cs.open(g.port, "late")  # the fourth: over the limit
            await settle(0.5)
            for c in small:
                assert not c.matching(is_presence("lobby", "join", late.id)), c.name
            # Messages still reach everyone.
            await late.say("lobby", "hello big room")
            for c in small + [late]:
                await c.take(is_message("lobby", "hello big room"), 5, "the message")
    run(body())
