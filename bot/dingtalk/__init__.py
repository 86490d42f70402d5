"""The DingTalk channel: protocol layer (signing, events, REST client, Stream client).

Wire format <-> small typed values only; the outbox and the dialogs are wired to it elsewhere.
"""
