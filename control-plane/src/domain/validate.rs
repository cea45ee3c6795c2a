//! Field validation with messages that name the field.

pub fn username(name: &str) -> Result<(), String> {
    if !(3..=32).contains(&name.chars().count()) {
        return Err("username must be 3 to 32 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '@' | '.'))
    {
        return Err("username may only contain a-z, A-Z, 0-9, and - _ @ .".into());
    }
    Ok(())
}

pub fn note(note: &str) -> Result<(), String> {
    if note.chars().count() > 500 {
        return Err("note must be at most 500 characters".into());
    }
    Ok(())
}

pub fn node_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.chars().count() > 256 {
        return Err("name must be 1 to 256 characters".into());
    }
    Ok(())
}

pub fn address(address: &str) -> Result<(), String> {
    if address.trim().is_empty() || address.len() > 256 || address.contains(char::is_whitespace) {
        return Err("address must be a host name or IP address".into());
    }
    Ok(())
}

pub fn port(port: i64) -> Result<(), String> {
    if (1..=65535).contains(&port) {
        Ok(())
    } else {
        Err("must be between 1 and 65535".into())
    }
}

pub fn usage_coefficient(coefficient: f64) -> Result<(), String> {
    if coefficient.is_finite() && coefficient > 0.0 {
        Ok(())
    } else {
        Err("must be greater than 0".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(username("alice").is_ok());
        assert!(username("a.b-c_d@e").is_ok());
        assert!(username("ab").is_err());
        assert!(username(&"a".repeat(33)).is_err());
        assert!(username("with space").is_err());
        assert!(username("ünï").is_err());
    }
}
