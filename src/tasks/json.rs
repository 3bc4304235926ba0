//! Tasks and comments as JSON under their GraphQL field names (for MCP answers and webhook
//! payloads).

use serde_json::{Value, json};

use crate::entity::{comment, task};
use crate::tasks::types::TaskPriority;
use crate::time::from_millis;

/// A task under its GraphQL field names.
pub fn task(row: &task::Model) -> Value {
    json!({
        "id": row.id,
        "title": row.title,
        "description": row.description,
        "status": row.status,
        "priority": TaskPriority::from_rank(row.priority).map(TaskPriority::as_str),
        "assignedAgent": row.assigned_agent,
        "tags": serde_json::from_str::<Value>(&row.tags).unwrap_or_default(),
        "dueDate": row.due_date.map(from_millis),
        "createdAt": from_millis(row.created_at),
        "updatedAt": from_millis(row.updated_at),
        "commentCount": row.comment_count,
        "claimedBy": row.claimed_by,
        "leaseExpiresAt": row.claimed_by.as_ref().and(row.lease_expires_at).map(from_millis),
    })
}

/// A comment under its GraphQL field names.
pub fn comment(row: &comment::Model) -> Value {
    json!({ "id": row.id, "author": row.author, "content": row.content, "createdAt": from_millis(row.created_at) })
}
