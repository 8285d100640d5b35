-- Payments name their customer object (API.md §16): `customer` is a cus_ id (or NULL); `customer_id` stays
-- the merchant's own free-form reference (§5).
ALTER TABLE payments ADD COLUMN customer text REFERENCES customers (id);
CREATE INDEX payments_cus ON payments (merchant_id, customer, id DESC) WHERE customer IS NOT NULL;

-- An order for a known customer (§16): its hosted checkout lists the customer's saved cards.
ALTER TABLE orders ADD COLUMN customer text REFERENCES customers (id);
