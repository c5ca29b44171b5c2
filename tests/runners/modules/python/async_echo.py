import asyncio


async def execute(input):
    await asyncio.sleep(0.01)
    return {"echo": input, "async": True}
