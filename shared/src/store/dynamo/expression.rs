//! Update and condition expressions built clause by clause, every name and value a placeholder
//! (so no attribute name can collide with DynamoDB's reserved words).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

#[derive(Default)]
pub struct Expression {
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
    set: Vec<String>,
    add: Vec<String>,
    remove: Vec<String>,
    conditions: Vec<String>,
}

impl Expression {
    /// A placeholder for a path: `a.b` → `#a.#b`; a list index stays (`journal[0]`).
    pub fn path(&mut self, path: &str) -> String {
        path.split('.')
            .map(|part| {
                let (name, index) = part.split_at(part.find('[').unwrap_or(part.len()));
                let placeholder = match self.names.iter().find(|(_, n)| *n == name) {
                    Some((placeholder, _)) => placeholder.clone(),
                    None => {
                        let placeholder = format!("#n{}", self.names.len());
                        self.names.insert(placeholder.clone(), name.to_owned());
                        placeholder
                    }
                };
                format!("{placeholder}{index}")
            })
            .collect::<Vec<_>>()
            .join(".")
    }

    pub fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    pub fn set(&mut self, path: &str, value: AttributeValue) {
        let (path, value) = (self.path(path), self.value(value));
        self.set.push(format!("{path} = {value}"));
    }

    /// `SET path = <expression>`, the expression written with `path`/`value` placeholders.
    pub fn set_raw(&mut self, clause: String) {
        self.set.push(clause);
    }

    pub fn add(&mut self, path: &str, value: AttributeValue) {
        let (path, value) = (self.path(path), self.value(value));
        self.add.push(format!("{path} {value}"));
    }

    pub fn remove(&mut self, path: &str) {
        let path = self.path(path);
        self.remove.push(path);
    }

    pub fn condition(&mut self, condition: String) {
        self.conditions.push(condition);
    }

    /// `path <op> value`.
    pub fn compare(&mut self, path: &str, op: &str, value: AttributeValue) {
        let (path, value) = (self.path(path), self.value(value));
        self.conditions.push(format!("{path} {op} {value}"));
    }

    pub fn exists(&mut self, path: &str, exists: bool) {
        let path = self.path(path);
        let function = if exists { "attribute_exists" } else { "attribute_not_exists" };
        self.conditions.push(format!("{function}({path})"));
    }

    pub fn update_expression(&self) -> String {
        let mut clauses = Vec::new();
        for (keyword, parts) in [("SET", &self.set), ("ADD", &self.add), ("REMOVE", &self.remove)] {
            if !parts.is_empty() {
                clauses.push(format!("{keyword} {}", parts.join(", ")));
            }
        }
        clauses.join(" ")
    }

    pub fn condition_expression(&self) -> Option<String> {
        (!self.conditions.is_empty()).then(|| self.conditions.join(" AND "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_placeholders_and_reused() {
        let mut e = Expression::default();
        e.add("balance", AttributeValue::N("1".into()));
        e.compare("holds.h1.credits", "=", AttributeValue::N("3".into()));
        e.remove("journal[0]");
        e.remove("holds.h1");
        assert_eq!(e.update_expression(), "ADD #n0 :v0 REMOVE #n4[0], #n1.#n2");
        assert_eq!(e.condition_expression().as_deref(), Some("#n1.#n2.#n3 = :v1"));
        assert_eq!(e.names.len(), 5);
    }
}
