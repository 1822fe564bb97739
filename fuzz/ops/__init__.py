"""Operations: one small frozen dataclass per kernel operation."""
