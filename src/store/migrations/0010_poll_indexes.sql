
-- The once-a-second look at disabled clients reads only them.
CREATE INDEX clients_disabled ON clients (client_id) WHERE disabled = 1;
-- Expired assertion ids are deleted by their exp.
CREATE INDEX used_assertions_by_exp ON used_assertions (exp);
