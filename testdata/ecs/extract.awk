# Prints the top-level entries of ecs_flat.yml named in KEEP (space separated), verbatim.
BEGIN { n = split(KEEP, k, " "); for (i = 1; i <= n; i++) want[k[i]] = 1 }
/^[^ ]/ { key = $0; sub(/:$/, "", key); gsub(/'/, "", key); on = (key in want) }
on { print }
