-- The demo tenant is marked, not found by name: `/demo` signs customer tokens only for the
-- demo tenant's own demo customers (`cus_demo`, `cus_demo_<suffix>`), never for another
-- tenant's customers with that tenant's public pk_test_ key. The tenant the `demo` command
-- created before (the oldest named "Demo") is the demo tenant; ops may mark others
-- (`POST /v1/tenants` with `"demo": true`, e.g. the browser tests' tenant).
ALTER TABLE tenants ADD COLUMN demo boolean NOT NULL DEFAULT false;
UPDATE tenants SET demo = true
 WHERE id = (SELECT id FROM tenants WHERE name = 'Demo' ORDER BY created_at LIMIT 1);
