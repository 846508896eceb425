
ALTER TABLE clients ADD COLUMN tls_subject TEXT;
