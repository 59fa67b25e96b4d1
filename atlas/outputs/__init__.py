"""Where results leave atlas besides the result indices: notifications, watches, dashboards, reports."""
