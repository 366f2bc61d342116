-- LOCAL STAND-IN FOR THE SUPABASE pg_net EXTENSION, NEVER DEPLOYED.
-- Installed into the local PostgreSQL as the extension `tether_standin_pg_net` by
-- `npm run stack:up` (a name that cannot overwrite a real pg_net's files), created and
-- registered as `pg_net` by sql/local/supabase.sql where the server has no real pg_net, with pg_net's signatures and tables for what Tether uses (http_post and
-- http_get; the real one also has http_delete's body, a Content-Type check, a `method` domain
-- rather than an enum, and a nullable `headers`). Requests are
-- queued in `net.http_request_queue` and announced with NOTIFY, which
-- PostgreSQL delivers only when the calling transaction commits, so, as with
-- pg_net, nothing is sent for a transaction that rolls back. A worker outside
-- the database (scripts/local/net_worker.ts) sends them and records each
-- outcome in `net._http_response`, timeouts and errors included.

create schema net;

create type net.http_method as enum ('GET', 'POST', 'DELETE');

create unlogged table net.http_request_queue (
  id bigserial primary key,
  method net.http_method not null,
  url text not null,
  headers jsonb not null,
  body bytea,
  timeout_milliseconds integer not null
);

create unlogged table net._http_response (
  id bigint,
  status_code integer,
  content_type text,
  headers jsonb,
  content text,
  timed_out boolean,
  error_msg text,
  created timestamptz not null default now()
);
create index _http_response_created_idx on net._http_response (created);

-- Percent-encodes every byte but the unreserved ones (A-Z a-z 0-9 - . _ ~), as pg_net's
-- curl_easy_escape does: a '+' in a timestamp must not arrive as a space.
create function net._urlencode(value text) returns text
language sql immutable strict
as $$
  select coalesce(string_agg(
    case when b between 48 and 57 or b between 65 and 90 or b between 97 and 122
              or b in (45, 46, 95, 126)
         then chr(b)
         else '%' || upper(lpad(to_hex(b), 2, '0'))
    end, '' order by i), '')
    from (select i, get_byte(convert_to(value, 'UTF8'), i) as b
            from generate_series(0, octet_length(convert_to(value, 'UTF8')) - 1) as i) bytes
$$;

create function net._urlencode_params(url text, params jsonb) returns text
language sql immutable
as $$
  select case
    when params is null or params = '{}'::jsonb then url
    else url || case when position('?' in url) > 0 then '&' else '?' end || (
      select string_agg(net._urlencode(key) || '=' || coalesce(net._urlencode(value), ''), '&')
        from jsonb_each_text(params)
    )
  end
$$;

create function net._enqueue(
  method net.http_method, url text, headers jsonb, body bytea, timeout_milliseconds integer
) returns bigint
language plpgsql
as $$
declare
  request_id bigint;
begin
  if url is null or url !~* '^https?://' then
    raise exception 'net: url must start with http:// or https://, got %', coalesce(url, 'null');
  end if;
  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values (method, url, coalesce(headers, '{}'::jsonb), body, timeout_milliseconds)
  returning id into request_id;
  perform pg_notify('net_http_request_queue', request_id::text);
  return request_id;
end
$$;

create function net.http_post(
  url text,
  body jsonb default '{}'::jsonb,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
  timeout_milliseconds integer default 5000
) returns bigint
language sql
as $$
  select net._enqueue('POST', net._urlencode_params(url, params), headers,
                      convert_to(body::text, 'UTF8'), timeout_milliseconds)
$$;

create function net.http_get(
  url text,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{}'::jsonb,
  timeout_milliseconds integer default 5000
) returns bigint
language sql
as $$
  select net._enqueue('GET', net._urlencode_params(url, params), headers, null, timeout_milliseconds)
$$;

create function net.http_delete(
  url text,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{}'::jsonb,
  timeout_milliseconds integer default 5000
) returns bigint
language sql
as $$
  select net._enqueue('DELETE', net._urlencode_params(url, params), headers, null, timeout_milliseconds)
$$;

-- Privileges as the real extension grants them (supabase/pg_net v0.20.4 sql/pg_net.sql: usage on
-- the schema and all on its tables and sequences to PUBLIC; functions keep PostgreSQL's default
-- EXECUTE for PUBLIC). On Supabase every role can call net.http_post and read the queue and the
-- responses, so what Tether puts in a request's headers is readable by any SQL role until sent.
grant usage on schema net to public;
grant all on all sequences in schema net to public;
grant all on all tables in schema net to public;
