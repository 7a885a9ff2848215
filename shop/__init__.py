"""The shop's own state (contacts, consent, handoffs, message statuses) and its demo data.

Used by the WhatsApp connector and by the actions; depends on neither.
"""
