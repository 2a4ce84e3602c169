import pytest


@pytest.mark.gen_test
async def test_register_and_file(api):
    ann = await api.register("ann@example.org", "Ann")
    petition = await api.file_petition(ann["token"])
    assert petition["status"] == "submitted"
    assert petition["author"] == {"user_id": ann["user"]["user_id"], "name": "Ann"}
