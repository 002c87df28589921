# The query names this package, and a data document (data.json) holds
# {"allow": true} inside it, beside the rule `reasons`: the decision
# would come from the data. Refused at load.
package strict.datadecision

reasons := ["from_the_rule"]
