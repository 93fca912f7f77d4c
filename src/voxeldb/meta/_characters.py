"""Characters, their inventories and their relationships."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import (
    Mapped,
    Mapper,
    mapped_column,
    relationship,
    validates,
)

from voxeldb.meta._base import EMPTY_JSON, Base, TimestampMixin, uuid_pk
from voxeldb.meta._rules import (
    check_json_object,
    check_number_map,
    check_position,
    check_text,
    model_rule,
)

if TYPE_CHECKING:
    from voxeldb.meta._users import User
    from voxeldb.meta._worlds import World

__all__ = [
    "Character",
    "CharacterRelationship",
    "InventoryItem",
]


class Character(TimestampMixin, Base):
    __tablename__ = "characters"

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    world_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("worlds.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    character_class: Mapped[str] = mapped_column(String(50))
    level: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    experience: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=EMPTY_JSON)
    position: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=EMPTY_JSON)
    # The position's coordinates copied into plain numeric columns on every flush: one
    # B-tree on (world_id, pos_x, pos_z) then serves "who is near here" box queries the same
    # way on both backends, which an index on a JSON expression cannot (different syntax
    # per dialect, invisible to autogenerate).
    pos_x: Mapped[float | None] = mapped_column(Float)
    pos_y: Mapped[float | None] = mapped_column(Float)
    pos_z: Mapped[float | None] = mapped_column(Float)
    is_alive: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))

    user: Mapped[User] = relationship(back_populates="characters")
    world: Mapped[World] = relationship(back_populates="characters")
    inventory: Mapped[list[InventoryItem]] = relationship(
        back_populates="character", cascade="all, delete-orphan", passive_deletes=True
    )
    relationships: Mapped[list[CharacterRelationship]] = relationship(
        foreign_keys="CharacterRelationship.character_id",
        back_populates="character",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    __table_args__ = (
        Index(None, "user_id", "world_id"),
        Index(None, "world_id", "pos_x", "pos_z"),
    )

    @validates("name", "character_class")
    def _check_names(self, key: str, value: Any) -> str:
        limit = 100 if key == "name" else 50
        return model_rule(key, lambda v, what: _bounded_text(v, what, limit), value)  # type: ignore[no-any-return]

    @validates("stats")
    def _check_stats(self, key: str, value: Any) -> dict[str, Any]:
        return model_rule(key, check_number_map, value)  # type: ignore[no-any-return]

    @validates("position")
    def _check_position(self, key: str, value: Any) -> dict[str, Any]:
        return model_rule(key, check_position, value)  # type: ignore[no-any-return]

    @validates("level", "experience")
    def _check_progress(self, key: str, value: Any) -> int:
        low = 1 if key == "level" else 0

        def rule(v: Any, what: str) -> int:
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{what} must be an integer >= {low}, got {v!r}")
            return v

        return model_rule(key, rule, value)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"Character(id={self.id!s}, name={self.name!r})"


def _bounded_text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise ValueError(f"{what} must be text of 1 to {limit} characters, got {value!r}")
    return check_text(value, what)


def _sync_position(_mapper: Mapper[Any], _conn: Any, target: Character) -> None:
    position = target.position or {}

    def coord(key: str) -> float | None:
        value = position.get(key) if isinstance(position, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return None

    target.pos_x, target.pos_y, target.pos_z = coord("x"), coord("y"), coord("z")


event.listen(Character, "before_insert", _sync_position)
event.listen(Character, "before_update", _sync_position)


class InventoryItem(TimestampMixin, Base):
    __tablename__ = "inventory_items"

    id: Mapped[uuid.UUID] = uuid_pk()
    character_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE"), index=True
    )
    item_type: Mapped[str] = mapped_column(
        String(50), default="material", server_default="material"
    )
    item_name: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    slot: Mapped[int | None]
    item_data: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=EMPTY_JSON)

    character: Mapped[Character] = relationship(back_populates="inventory")

    @validates("quantity")
    def _check_quantity(self, key: str, value: Any) -> int:
        def rule(v: Any, what: str) -> int:
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{what} must be an integer >= 0, got {v!r}")
            return v

        return model_rule(key, rule, value)  # type: ignore[no-any-return]

    @validates("item_data")
    def _check_item_data(self, key: str, value: Any) -> dict[str, Any]:
        return model_rule(key, check_json_object, value)  # type: ignore[no-any-return]

    __table_args__ = (CheckConstraint("quantity >= 0", name="quantity_non_negative"),)


class CharacterRelationship(TimestampMixin, Base):
    __tablename__ = "character_relationships"

    id: Mapped[uuid.UUID] = uuid_pk()
    character_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    target_character_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE"), index=True
    )
    relationship_type: Mapped[str] = mapped_column(
        String(50), default="acquaintance", server_default="acquaintance"
    )
    affinity: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    relationship_data: Mapped[dict[str, Any]] = mapped_column(
        default=dict, server_default=EMPTY_JSON
    )

    character: Mapped[Character] = relationship(
        foreign_keys=[character_id], back_populates="relationships"
    )
    target_character: Mapped[Character] = relationship(foreign_keys=[target_character_id])

    @validates("affinity")
    def _check_affinity(self, key: str, value: Any) -> float:
        def rule(v: Any, what: str) -> float:
            if isinstance(v, bool) or not isinstance(v, int | float) or not -1e9 < v < 1e9:
                raise ValueError(f"{what} must be a finite number, got {v!r}")
            return float(v)

        return model_rule(key, rule, value)  # type: ignore[no-any-return]

    @validates("relationship_data")
    def _check_relationship_data(self, key: str, value: Any) -> dict[str, Any]:
        return model_rule(key, check_json_object, value)  # type: ignore[no-any-return]

    __table_args__ = (
        UniqueConstraint(
            "character_id",
            "target_character_id",
            "relationship_type",
            name="uq_character_relationships_pair_type",
        ),
        CheckConstraint("character_id <> target_character_id", name="not_self"),
    )
