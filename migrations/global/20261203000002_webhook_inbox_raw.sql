-- Every authenticated delivery is kept (docs/hardening.md "Input hygiene"). JSON that jsonb refuses (the
-- `\u0000` escape, lone UTF-16 surrogates) is stored for processing with those replaced by U+FFFD
-- (`payload_repaired`), and the bytes as received are kept here, byte for byte (also for `rejected` bodies,
-- whose `raw_body` text copy cannot hold every byte). NULL when `payload` is the delivery as received.
ALTER TABLE webhook_inbox ADD COLUMN raw bytea;
ALTER TABLE webhook_inbox ALTER COLUMN raw SET COMPRESSION lz4;
ALTER TABLE webhook_inbox ADD COLUMN payload_repaired boolean NOT NULL DEFAULT false;
