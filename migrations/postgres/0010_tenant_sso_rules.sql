-- A tenant's own single sign-on rules: which email domains and identity-provider groups get which
-- role in this tenant when they sign in through the deployment's provider. One JSON document per
-- tenant ({"domain_roles": [{"pattern", "role"}], "group_roles": [...]}), replaced whole by its
-- admins; applied alongside the operator's rules (the higher role wins).
CREATE TABLE tenant_sso_rules (
    tenant_id  BIGINT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    rules      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
