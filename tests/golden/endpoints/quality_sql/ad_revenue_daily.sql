-- not_null_date_advertiser_id_campaign_id_placement_currency_impressions_revenue_micros (not_null, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    date,
    advertiser_id,
    campaign_id,
    placement,
    currency,
    impressions,
    revenue_micros
  FROM endpoints.ad_revenue_daily
  WHERE
    date = @run_date
    AND (
      date IS NULL
      OR advertiser_id IS NULL
      OR campaign_id IS NULL
      OR placement IS NULL
      OR currency IS NULL
      OR impressions IS NULL
      OR revenue_micros IS NULL
    )
) AS failing
LIMIT 5;

-- unique_date_advertiser_id_campaign_id_placement_currency (unique, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    date,
    advertiser_id,
    campaign_id,
    placement,
    currency,
    COUNT(*) OVER (PARTITION BY date, advertiser_id, campaign_id, placement, currency) AS duplicates
  FROM endpoints.ad_revenue_daily
  WHERE
    date = @run_date
  QUALIFY
    COUNT(*) OVER (PARTITION BY date, advertiser_id, campaign_id, placement, currency) > 1
) AS failing
LIMIT 5;

-- known_placements (accepted_values, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    placement
  FROM endpoints.ad_revenue_daily
  WHERE
    date = @run_date
    AND NOT placement IS NULL
    AND NOT placement IN ('audio', 'display', 'video')
) AS failing
LIMIT 5;

-- row_count (row_count, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    *
  FROM (
    SELECT
      COUNT(*) AS row_count,
      1 AS min_rows,
      CAST(NULL AS INT64) AS max_rows
    FROM endpoints.ad_revenue_daily
    WHERE
      date = @run_date
  ) AS counted
  WHERE
    row_count < 1
) AS failing
LIMIT 5;

-- no_negative_revenue (sql, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    advertiser_id,
    campaign_id,
    revenue_micros
  FROM endpoints.ad_revenue_daily
  WHERE
    date = @run_date AND (
      revenue_micros < 0 OR clicks > impressions
    )
) AS failing
LIMIT 5;

-- revenue_reconciles_with_impressions (sql, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    daily.revenue_micros,
    source.revenue_micros AS source_revenue_micros
  FROM (
    SELECT
      SUM(revenue_micros) AS revenue_micros
    FROM endpoints.ad_revenue_daily
    WHERE
      date = @run_date
  ) AS daily
  CROSS JOIN (
    SELECT
      SUM(revenue_micros) AS revenue_micros
    FROM events.ad_impression_v1_dedup
    WHERE
      DATE(event_time) = @run_date
  ) AS source
  WHERE
    daily.revenue_micros <> source.revenue_micros
) AS failing
LIMIT 5;
