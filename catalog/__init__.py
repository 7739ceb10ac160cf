"""Learning content and the social graph: courses, sections, lessons, enrollments, progress,
reviews, communities, study groups, friends, contests (group wars), leaderboards and dashboards."""
